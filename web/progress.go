package web

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/taskqueue/taskqueue/query"
)

// Progress answers GET /api/players/{playerId}/progress from the read side
// (query.PlayerProgressHandler implements it).
type Progress interface {
	Handle(ctx context.Context, q query.PlayerProgress) (query.PlayerProgressView, error)
}

// Analytics answers the admin-only GET /api/analytics/{report} from the
// read side (query.AnalyticsHandler implements it).
type Analytics interface {
	Handle(ctx context.Context, q query.Analytics) (query.AnalyticsReport, error)
}

// getProgress serves the player's skills, levels and inventory as the
// player_progress read model has them.
func (s *Server) getProgress(w http.ResponseWriter, r *http.Request) {
	if s.progress == nil {
		s.notImplemented(w, r)
		return
	}
	v, err := s.progress.Handle(r.Context(), query.PlayerProgress{PlayerID: chi.URLParam(r, "playerId")})
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// analyticsRoutes are the analyst reports: admin only, like /api/admin.
func (s *Server) analyticsRoutes(r chi.Router) {
	r.Use(s.authenticate, requireAdmin(s))
	r.Get("/{report}", s.getAnalytics)
}

// getAnalytics serves one report: ?from=&to= (RFC 3339) &taskType=. An
// unknown report is not-found; a bad parameter a validation problem naming
// it.
func (s *Server) getAnalytics(w http.ResponseWriter, r *http.Request) {
	if s.analytics == nil {
		s.notImplemented(w, r)
		return
	}
	v := r.URL.Query()
	q := query.Analytics{Report: chi.URLParam(r, "report"), TaskType: v.Get("taskType")}
	for _, p := range []struct {
		name string
		into *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if raw := v.Get(p.name); raw != "" {
			t, err := time.Parse(time.RFC3339Nano, raw)
			if err != nil {
				s.writeProblem(w, r, badField(p.name, "must be an RFC 3339 time like 2026-11-29T14:00:00Z, got %q", raw))
				return
			}
			*p.into = t
		}
	}
	report, err := s.analytics.Handle(r.Context(), q)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, report)
}

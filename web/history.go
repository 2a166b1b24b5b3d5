package web

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/taskqueue/taskqueue/query"
)

// History answers GET /api/queue/{playerId}/history from the read side
// (query.HistoryHandler implements it).
type History interface {
	Handle(ctx context.Context, q query.History) (query.HistoryPage, error)
}

// getHistory serves a page of the player's finished tasks, newest first:
// ?type=&from=&to= (RFC 3339) &cursor=&limit=, as JSON or, with
// Accept: text/csv, as CSV.
func (s *Server) getHistory(w http.ResponseWriter, r *http.Request) {
	if s.history == nil {
		s.notImplemented(w, r)
		return
	}
	v := r.URL.Query()
	q := query.History{PlayerID: chi.URLParam(r, "playerId"), Type: v.Get("type"), Cursor: v.Get("cursor")}
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
	if raw := v.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil {
			s.writeProblem(w, r, badField("limit", "must be an integer, got %q", raw))
			return
		}
		q.Limit = n
	}
	page, err := s.history.Handle(r.Context(), q)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "text/csv") {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		if err := page.WriteCSV(w); err != nil {
			s.log.WarnContext(r.Context(), "write history CSV", "err", err)
		}
		return
	}
	writeJSON(w, http.StatusOK, page)
}

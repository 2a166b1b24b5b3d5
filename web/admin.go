package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"

	"github.com/taskqueue/taskqueue/audit"
	"github.com/taskqueue/taskqueue/internal/faults"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/query"
)

// Admin serves the admin API under /api/admin (role admin only; 403 for
// anyone else). A nil field answers 501.
type Admin struct {
	// Projections answers GET /api/admin/projections[/{name}].
	Projections *query.ProjectionStatusHandler
	// Rebuild answers POST /api/admin/projections/{name}/rebuild (202).
	Rebuild *query.RebuildProjectionHandler
	// Skip answers POST /api/admin/projections/{name}/skip
	// {"position":"…"} (204; 409 with the reason when refused).
	Skip *query.SkipEventHandler
	// Retry answers POST /api/admin/projections/{name}/retry (202).
	Retry *query.RetryProjectionHandler
	// PlayerEvents answers GET /api/admin/players/{playerId}/events
	// (?from=&type=&limit=; ops.AdminEvents).
	PlayerEvents func(ctx context.Context, player string, params url.Values) (any, error)
	// QueueAt answers GET /api/admin/players/{playerId}/queue?at=
	// (ops.AdminQueueAt).
	QueueAt func(ctx context.Context, player string, params url.Values) (any, error)
	// Forget answers POST /api/admin/players/{playerId}/forget
	// (ops.AdminForget).
	Forget func(ctx context.Context, player string, params url.Values) (any, error)
	// DeadLetters answers GET /api/admin/deadletters (?all=true&limit=) and
	// POST /api/admin/deadletters/{id}/retry (202).
	DeadLetters DeadLetterQueue
}

func (s *Server) adminRoutes(r chi.Router) {
	r.Use(s.authenticate, requireAdmin(s))
	r.With(s.audited(audit.ProjectionRead, "name")).Get("/projections", s.adminProjections)
	r.With(s.audited(audit.ProjectionRead, "name")).Get("/projections/{name}", s.adminProjections)
	r.With(s.audited(audit.Rebuild, "name")).Post("/projections/{name}/rebuild", s.adminRebuild)
	r.With(s.audited(audit.Skip, "name")).Post("/projections/{name}/skip", s.adminSkip)
	r.With(s.audited(audit.Retry, "name")).Post("/projections/{name}/retry", s.adminRetry)
	r.With(s.audited(audit.EventRead, "playerId")).Get("/players/{playerId}/events", s.adminPlayer(func(a *Admin) func(context.Context, string, url.Values) (any, error) { return a.PlayerEvents }))
	r.With(s.audited(audit.TimeTravel, "playerId")).Get("/players/{playerId}/queue", s.adminPlayer(func(a *Admin) func(context.Context, string, url.Values) (any, error) { return a.QueueAt }))
	r.With(s.audited(audit.Forget, "playerId")).Post("/players/{playerId}/forget", s.adminPlayer(func(a *Admin) func(context.Context, string, url.Values) (any, error) { return a.Forget }))
	r.With(s.audited(audit.DeadLetterRead, "")).Get("/deadletters", s.adminDeadLetters)
	r.With(s.audited(audit.DeadLetterRetry, "id")).Post("/deadletters/{id}/retry", s.adminRetryDeadLetter)
}

// requireAdmin lets only admins through.
func requireAdmin(s *Server) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := auth.PrincipalFrom(r.Context())
			if p.Role != auth.RoleAdmin {
				s.writeProblem(w, r, fmt.Errorf("%w: %s is not an admin", errForbidden, p.PlayerID))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func (s *Server) adminProjections(w http.ResponseWriter, r *http.Request) {
	if s.admin == nil || s.admin.Projections == nil {
		s.notImplemented(w, r)
		return
	}
	name := chi.URLParam(r, "name")
	states, err := s.admin.Projections.Handle(r.Context(), query.ProjectionStatus{Name: name})
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if name != "" && len(states) == 1 {
		writeJSON(w, http.StatusOK, states[0])
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"projections": states})
}

func (s *Server) adminRebuild(w http.ResponseWriter, r *http.Request) {
	if s.admin == nil || s.admin.Rebuild == nil {
		s.notImplemented(w, r)
		return
	}
	started, err := s.admin.Rebuild.Handle(r.Context(), query.RebuildProjection{Name: chi.URLParam(r, "name")})
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, started)
}

type skipRequest struct {
	Position string `json:"position"`
}

func (s *Server) adminSkip(w http.ResponseWriter, r *http.Request) {
	if s.admin == nil || s.admin.Skip == nil {
		s.notImplemented(w, r)
		return
	}
	var req skipRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	p, _ := auth.PrincipalFrom(r.Context())
	err := s.admin.Skip.Handle(r.Context(), query.SkipEvent{Name: chi.URLParam(r, "name"), Position: req.Position, By: p.PlayerID})
	if err != nil {
		s.writeProblem(w, r, unavailableIfTransient(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminRetry(w http.ResponseWriter, r *http.Request) {
	if s.admin == nil || s.admin.Retry == nil {
		s.notImplemented(w, r)
		return
	}
	name := chi.URLParam(r, "name")
	if err := s.admin.Retry.Handle(r.Context(), query.RetryProjection{Name: name}); err != nil {
		s.writeProblem(w, r, unavailableIfTransient(err))
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"name": name})
}

// unavailableIfTransient marks a transient error (the database could not
// be reached to try the event again) as unavailable: 503, never 500.
func unavailableIfTransient(err error) error {
	if faults.Transient(err) {
		return fmt.Errorf("%w: %w", errUnavailable, err)
	}
	return err
}

func (s *Server) adminPlayer(pick func(*Admin) func(context.Context, string, url.Values) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.admin == nil || pick(s.admin) == nil {
			s.notImplemented(w, r)
			return
		}
		v, err := pick(s.admin)(r.Context(), chi.URLParam(r, "playerId"), r.URL.Query())
		if err != nil {
			s.writeProblem(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

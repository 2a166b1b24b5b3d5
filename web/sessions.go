package web

import (
	"context"
	"fmt"
	"net/http"

	"github.com/taskqueue/taskqueue/audit"
	"github.com/taskqueue/taskqueue/auth"
)

// SessionStore is what POST /api/auth/refresh and /api/auth/logout need of
// the sessions (app adapts sessions.Sessions to it).
//
// While the store behind the sessions (Redis) is down, Refresh and Revoke
// return an error that faults.Classify calls Unavailable: the answer is
// 503 with Retry-After, not 401. A refresh cannot tell whether the session
// was revoked meanwhile, and answering 401 would log out a player whose
// session is fine; a logout is recorded on this instance at once, but the
// other instances learn of it only through the store, so the client is
// asked to send it again rather than told it is done. Checking a session
// on every request (Config.Sessions) fails open instead: see package sessions.
type SessionStore interface {
	// Refresh renews session sid and returns whose it is. A session that
	// does not exist, expired or was revoked is an error matching
	// auth.ErrUnauthorized.
	Refresh(ctx context.Context, sid string) (player string, role auth.Role, err error)
	// Revoke ends session sid everywhere.
	Revoke(ctx context.Context, sid string) error
}

// refreshSession serves POST /api/auth/refresh: a new token of the
// caller's session, whose lifetime restarts.
func (s *Server) refreshSession(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.PrincipalFrom(r.Context())
	if p.SessionID == "" {
		s.writeProblem(w, r, fmt.Errorf("%w: the token has no session to refresh", auth.ErrUnauthorized))
		return
	}
	player, role, err := s.sessionStore.Refresh(r.Context(), p.SessionID)
	if err != nil {
		s.writeProblem(w, r, fmt.Errorf("refresh session %s: %w", p.SessionID, err))
		return
	}
	token, exp, err := s.tokens.MintSession(player, role, p.SessionID, s.tokenTTL)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	s.record(r, audit.Entry{Action: audit.Refresh, Principal: player, Role: string(role), Status: http.StatusOK})
	writeJSON(w, http.StatusOK, devTokenResponse{Token: token, ExpiresAt: exp})
}

// logout serves POST /api/auth/logout: it revokes the caller's session, so
// every token of it stops working at once, REST and WebSocket (204).
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.PrincipalFrom(r.Context())
	if p.SessionID == "" {
		s.writeProblem(w, r, fmt.Errorf("%w: the token has no session to end", auth.ErrUnauthorized))
		return
	}
	if err := s.sessionStore.Revoke(r.Context(), p.SessionID); err != nil {
		s.writeProblem(w, r, fmt.Errorf("revoke session %s: %w", p.SessionID, err))
		return
	}
	s.record(r, audit.Entry{Action: audit.Logout, Principal: p.PlayerID, Role: string(p.Role), Status: http.StatusNoContent})
	w.WriteHeader(http.StatusNoContent)
}

package web

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/taskqueue/taskqueue/auth"
)

// SessionChecker tells whether a session is still active (sessions.Sessions
// implements it, with Redis or in-process).
type SessionChecker interface {
	Active(ctx context.Context, sessionID string) (bool, error)
}

// Limiter counts the requests of a client address and of a player, and
// says how long to wait when one is over its limit (ratelimit.Limiter
// implements it, with Redis or in-process).
type Limiter interface {
	AllowIP(ctx context.Context, ip string) (bool, time.Duration)
	AllowPlayer(ctx context.Context, player string) (bool, time.Duration)
}

// errSessionInactive: the token is valid, its session is not.
var errSessionInactive = errors.New("the session was revoked or has expired")

// checkSession refuses with 401 a request whose principal (authenticate runs
// first) carries a session that is not active. Tokens without a session
// pass.
func (s *Server) checkSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := auth.PrincipalFrom(r.Context()); ok && p.SessionID != "" {
			active, err := s.sessions.Active(r.Context(), p.SessionID)
			if err != nil || !active {
				// An error is answered the same way: the checker answers
				// from memory while its store is away, so an error here
				// is not a transient outage.
				s.writeProblem(w, r, errors.Join(auth.ErrUnauthorized, errSessionInactive))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// limitCommands limits the requests that change something (every method
// but GET, HEAD and OPTIONS): per client address (r.RemoteAddr, which
// clientAddr sets from X-Forwarded-For behind a trusted proxy), then per
// player (authenticate runs first). A refused request gets 429
// rate-limited with Retry-After.
func (s *Server) limitCommands(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		ip, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			ip = r.RemoteAddr
		}
		ok, retry := s.limit.AllowIP(r.Context(), ip)
		if ok {
			if p, found := auth.PrincipalFrom(r.Context()); found {
				ok, retry = s.limit.AllowPlayer(r.Context(), p.PlayerID)
			}
		}
		if !ok {
			s.writeProblem(w, r, &RateLimitError{RetryAfter: retry})
			return
		}
		next.ServeHTTP(w, r)
	})
}

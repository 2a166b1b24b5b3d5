package web

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/taskqueue/taskqueue/audit"
	"github.com/taskqueue/taskqueue/auth"
)

// What the HTTP layer writes to the audit trail (package audit): every
// sign-in (RecordSignIn), refresh and logout, every admin request with its
// answer (audited), and every 401 and 403 with the principal, when the
// token was valid, and the client's address (recordRefusal, called where
// the status is known: the access log).

// record adds the request's address and ID to e and records it.
func (s *Server) record(r *http.Request, e audit.Entry) {
	if s.audit == nil {
		return
	}
	e.Remote = r.RemoteAddr
	e.RequestID = RequestIDFrom(r.Context())
	s.audit.Record(r.Context(), e)
}

// RecordSignIn records that p signed in by method ("dev-token", "oidc"):
// the hook for every way of signing in.
func (s *Server) RecordSignIn(r *http.Request, p auth.Principal, method string) {
	s.record(r, audit.Entry{Action: audit.SignIn, Principal: p.PlayerID, Role: string(p.Role), Status: http.StatusOK, Detail: method})
}

// recordRefusal records a 401 or 403 answer to r (by the access log, so
// that answers written below web count too), with the principal when its
// token was valid and the reason writeProblem was given, if it wrote it.
func (s *Server) recordRefusal(r *http.Request, status int, who *requestPrincipal) {
	detail := http.StatusText(status)
	if who.problem != nil {
		detail = who.problem.Error()
	}
	s.record(r, audit.Entry{Action: audit.Refused, Principal: who.p.PlayerID, Role: string(who.p.Role),
		Target: r.Method + " " + r.URL.Path, Status: status, Detail: detail})
}

// audited records action after the admin handler answered, on the route
// parameter param (the target; "" for none) with the query string.
func (s *Server) audited(action audit.Action, param string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec, ok := w.(*statusRecorder)
			if !ok {
				rec = &statusRecorder{ResponseWriter: w}
			}
			before := rec.status
			next.ServeHTTP(rec, r)
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			if before == 0 && (status == http.StatusUnauthorized || status == http.StatusForbidden) {
				return // recorded as a refusal already
			}
			p, _ := auth.PrincipalFrom(r.Context())
			target := ""
			if param != "" {
				target = chi.URLParam(r, param)
			}
			s.record(r, audit.Entry{Action: action, Principal: p.PlayerID, Role: string(p.Role), Target: target, Status: status, Detail: r.URL.RawQuery})
		})
	}
}

// requestPrincipal is where authenticate leaves the request's principal
// for the access log and the audit of refusals, which run outside the
// handler that got it (accessLog puts it in the context), with the error
// the request was answered with.
type requestPrincipal struct {
	p  auth.Principal
	ok bool
	// problem is the error writeProblem answered with, if it did.
	problem error
}

type requestPrincipalKey struct{}

// withPrincipalSlot returns ctx with a slot for the principal.
func withPrincipalSlot(ctx context.Context) (context.Context, *requestPrincipal) {
	slot := &requestPrincipal{}
	return context.WithValue(ctx, requestPrincipalKey{}, slot), slot
}

// noteAuthenticated fills the request's slot with p.
func noteAuthenticated(ctx context.Context, p auth.Principal) {
	if slot, ok := ctx.Value(requestPrincipalKey{}).(*requestPrincipal); ok {
		slot.p, slot.ok = p, true
	}
}

// noteProblem keeps the error a request was answered with.
func noteProblem(ctx context.Context, err error) {
	if slot, ok := ctx.Value(requestPrincipalKey{}).(*requestPrincipal); ok {
		slot.problem = err
	}
}

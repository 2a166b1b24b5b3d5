package app

import (
	"context"
	"net/http"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/query"
	"github.com/taskqueue/taskqueue/web"
)

// newHTTP builds the HTTP API of the app a (built up to its hub, command
// side and forgetting) over the Redis roles rr and the read side rs (nil
// when none runs here), with the admin API admin and the readiness checks
// ready.
func newHTTP(a *App, rr *redisRoles, rs *readSide, admin *web.Admin, ready []web.ReadinessCheck) (*web.Server, error) {
	cfg := a.Config
	var (
		queueView *query.QueueViewHandler
		history   web.History
		progress  web.Progress
		analytics web.Analytics
	)
	if rs != nil {
		queueView, history, progress, analytics = rs.queue, rs.history, rs.progress, rs.analytics
	}
	return web.NewServer(web.Config{
		Tokens:      a.Tokens,
		Verifier:    a.Verifier,
		SignIn:      signIn(cfg, a.OIDC),
		Dev:         cfg.DevMode(),
		TokenTTL:    cfg.TokenTTL,
		CORSOrigins: cfg.CORSOrigins,
		Logger:      a.Logger,
		Catalog:     a.Catalog,
		Queues:      newQueues(a.Commands, rr.cache, queueView, a.Store),
		History:     history,
		Progress:    progress,
		Analytics:   analytics,
		Realtime:    a.Realtime,
		Admin:       admin,
		Metrics:     publicMetrics(cfg, a.Metrics.Handler()),
		Audit:       a.Audit,
		Middleware:  []func(http.Handler) http.Handler{a.Metrics.HTTP},
		Ready:       ready,
		Sessions:    rr.sessions,
		NewSession: func(ctx context.Context, player string, role auth.Role) (string, error) {
			sess, err := rr.sessions.Create(ctx, player, role)
			return sess.ID, err
		},
		SessionStore:   sessionStore{rr.sessions},
		CommandLimit:   rr.limiter,
		TrustedProxies: cfg.TrustedProxies,
		RequestTimeout: cfg.RequestTimeout,
		Subscribable: func(ctx context.Context) error {
			_, err := a.Store.Head(ctx)
			return err
		},
	})
}

package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/taskqueue/taskqueue/audit"
	"github.com/taskqueue/taskqueue/projections"
)

// auditSweepInterval is how often the audit trail's retention sweep runs.
const auditSweepInterval = time.Hour

// startAudit returns the audit trail of the app: log lines, and rows of
// audit_log in db (the read models' database; nil: log lines only), swept
// hourly of what is older than cfg.AuditRetentionDays. cl closes both.
func startAudit(db projections.DB, cfg Config, log *slog.Logger, cl *closers) *audit.Trail {
	if db == nil {
		return audit.NewTrail(log, nil)
	}
	store := audit.NewStore(db)
	trail := audit.NewTrail(log, store)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		store.RunRetention(ctx, auditSweepInterval, time.Duration(cfg.AuditRetentionDays)*24*time.Hour, func(err error) {
			log.Warn("audit retention sweep failed", "err", err)
		})
	}()
	cl.add(func() {
		cancel()
		<-done
		trail.Close()
	})
	return trail
}

// publicMetrics is the /metrics handler of the public listener: none when
// TASKQUEUE_ADMIN_ADDR serves it.
func publicMetrics(cfg Config, h http.Handler) http.Handler {
	if cfg.AdminAddr != "" {
		return nil
	}
	return h
}

// adminHandler serves the internal listener of TASKQUEUE_ADMIN_ADDR:
// /metrics, /healthz and /readyz, nothing else.
func adminHandler(metrics, ready http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.Handle("GET /readyz", ready)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// OpenAuditStore opens the audit trail's table in cfg's SQL database (the
// SQLite file, or PostgreSQL; migrations applied), for `taskqueue audit`.
// The returned func closes it.
func OpenAuditStore(ctx context.Context, cfg Config) (*audit.Store, func(), error) {
	cfg.setDefaults()
	if err := cfg.ValidateWithoutTokens(); err != nil {
		return nil, nil, err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if st.readModels == nil {
		_ = st.close()
		return nil, nil, errors.New("no SQL database beside the event store: the audit trail is in the log only")
	}
	return audit.NewStore(st.readModels), func() { _ = st.close() }, nil
}

package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/taskqueue/taskqueue/eventstore/postgres"
	"github.com/taskqueue/taskqueue/web"
)

// HorizonAlertAge is how long a writing transaction may hold back the log's
// readers on PostgreSQL before the service says so: one log line naming it,
// "degraded" under logHorizon in /readyz, and the metrics. Transactions of
// the service last milliseconds (their sessions end one left idle after
// IdleInTransactionTimeout); one open this long is someone else's, or one
// of ours cut off.
const HorizonAlertAge = 10 * time.Second

// horizonEvery is how often the watch looks.
const horizonEvery = 5 * time.Second

// horizonWatch keeps an eye on what holds back every reader of the log
// (postgres.Store.Horizon): a transaction open anywhere in the cluster
// stalls the projections, the processor's schedule and the WebSocket hubs
// of every instance without any of them failing, so it is reported where
// an operator looks. Safe for concurrent use.
type horizonWatch struct {
	store *postgres.Store
	log   *slog.Logger

	mu   sync.Mutex
	last postgres.Horizon
	held bool // last.Age >= HorizonAlertAge, logged
}

// run looks every horizonEvery until ctx ends.
func (w *horizonWatch) run(ctx context.Context) {
	t := time.NewTicker(horizonEvery)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, horizonEvery)
		h, err := w.store.Horizon(qctx)
		cancel()
		if err == nil {
			w.observe(h)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// observe records h, logging when a hold starts and when it ends.
func (w *horizonWatch) observe(h postgres.Horizon) {
	w.mu.Lock()
	was, held := w.held, h.Age >= HorizonAlertAge
	prev := w.last
	w.last, w.held = h, held
	w.mu.Unlock()
	switch {
	case held && !was:
		w.log.Warn("the event log's readers are held back: projections, the processor's schedule and live updates "+
			"wait until this transaction ends (end it, or set idle_in_transaction_session_timeout for its role)",
			"pid", h.PID, "database", h.Database, "user", h.User, "application", h.Application, "state", h.State,
			"open", h.Age.Round(time.Second).String(), "waitingEvents", h.Unreadable)
	case was && !held:
		w.log.Info("the event log's readers go on: the transaction that held them back ended",
			"pid", prev.PID, "heldFor", prev.Age.Round(time.Second).String())
	}
}

// state returns the last observation.
func (w *horizonWatch) state() (age time.Duration, waiting int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last.Age, w.last.Unreadable
}

// readiness is /readyz's "logHorizon" check: optional, since the instance
// still takes commands and the hold is the cluster's, not this instance's
// (pulling every instance out of rotation would not end it).
func (w *horizonWatch) readiness() web.ReadinessCheck {
	return web.ReadinessCheck{Name: "logHorizon", Optional: true, Check: func(context.Context) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if !w.held {
			return nil
		}
		return errors.New(w.last.String())
	}}
}

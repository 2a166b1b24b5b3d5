package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/query"
	"github.com/taskqueue/taskqueue/web"
)

// retentionInterval is how often the history's retention sweep runs.
const retentionInterval = time.Hour

// readSide is the read side running inside the app: the projections
// runner, the history retention, and the query handlers over them.
type readSide struct {
	runner  *projections.Runner
	history *query.HistoryHandler
	stop    func()
}

// startReadSide starts the projections runner and the retention sweep on
// db (the read-model database) following store. stop ends both and waits.
func startReadSide(store eventstore.Store, db projections.DB, cfg Config, log *slog.Logger) (*readSide, error) {
	runner, err := projections.NewRunner(projections.Config{
		Store: store,
		DB:    db,
		Projections: []projections.Projection{
			projections.Queues{}, projections.PlayerProgress{}, projections.Analytics{},
		},
		Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("start the read side: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		_ = runner.Run(ctx)
	}()
	retention := projections.Retention{DB: db, Days: cfg.HistoryRetentionDays}
	go func() {
		defer func() { done <- struct{}{} }()
		retention.Run(ctx, retentionInterval, func(err error) {
			log.Warn("history retention sweep failed", "err", err)
		})
	}()
	return &readSide{
		runner:  runner,
		history: query.NewHistoryHandler(projections.NewReadModels(db)),
		stop: func() {
			cancel()
			<-done
			<-done
		},
	}, nil
}

// projectionsCheck is ready when no projection has failed.
func projectionsCheck(r *projections.Runner) web.ReadinessCheck {
	return web.ReadinessCheck{Name: "projections", Check: func(ctx context.Context) error {
		statuses, err := r.Status(ctx)
		if err != nil {
			return err
		}
		var failed []string
		for _, s := range statuses {
			if s.State == projections.StateFailed {
				failed = append(failed, s.Name)
			}
		}
		if len(failed) > 0 {
			return errors.New("failed projections: " + strings.Join(failed, ", "))
		}
		return nil
	}}
}

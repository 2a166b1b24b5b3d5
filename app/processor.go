package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/processor"
	"github.com/taskqueue/taskqueue/projections"
)

// startProcessor runs the processor (the schedule of due repetitions and
// the due loop that completes them) on db until stop is called.
func startProcessor(store eventstore.Store, db projections.DB, rules domain.Rules, log *slog.Logger) (*processor.Processor, func(), error) {
	p, err := processor.New(processor.Config{
		Store:    store,
		DB:       db,
		Commands: command.Config{Rules: rules},
		Logger:   log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("start the processor: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.Run(ctx); err != nil {
			log.Error("processor stopped", "err", err)
		}
	}()
	return p, func() { cancel(); <-done }, nil
}

package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/taskqueue/taskqueue/processor"
	"github.com/taskqueue/taskqueue/web"
)

// deadLetters adapts the processor's dead letter queue to web's port
// (web.DeadLetterQueue): its rows become web's view, and its errors the
// sentinels web answers by (web knows nothing of the processor).
type deadLetters struct{ q *processor.DeadLetters }

func (d deadLetters) List(ctx context.Context, limit int, includeRetried bool) ([]web.DeadLetter, error) {
	list, err := d.q.List(ctx, limit, includeRetried)
	if err != nil {
		return nil, err
	}
	out := make([]web.DeadLetter, len(list))
	for i, l := range list {
		out[i] = web.DeadLetter(l) // the same fields: a field added to one and not the other fails to build
	}
	return out, nil
}

func (d deadLetters) Retry(ctx context.Context, id string) error {
	err := d.q.Retry(ctx, id)
	switch {
	case errors.Is(err, processor.ErrDeadLetterNotFound):
		return fmt.Errorf("%w: %w", web.ErrDeadLetterNotFound, err)
	case errors.Is(err, processor.ErrNotRunning):
		return fmt.Errorf("%w: %w", web.ErrProcessorNotRunning, err)
	}
	return err
}

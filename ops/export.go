package ops

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
)

// ExportResult reports an export.
type ExportResult struct {
	// Events is the number of events written.
	Events int
	// Head is the log position the export read up to: events committed
	// after the export began are not in it.
	Head eventstore.Position
}

// Export writes every event of the log whose OccurredAt is in r to w as
// JSON lines (EventLine), in log order: `taskqueue export --from T --to T`.
// It reads up to the head of the log when it starts, so it ends on a live
// store: every event committed before it started, even where the log's
// readable prefix lags behind (on PostgreSQL a transaction open anywhere on
// the server holds it back; the export waits for it to pass the head). An export with a From bound holds streams from their middle: Import
// refuses it (a stream must start at version 1).
func Export(ctx context.Context, store eventstore.Store, w io.Writer, r Range) (ExportResult, error) {
	if err := r.Validate(); err != nil {
		return ExportResult{}, err
	}
	head, err := committedHead(ctx, store)
	if err != nil {
		return ExportResult{}, fmt.Errorf("export: read the head of the log: %w", err)
	}
	res := ExportResult{Head: head}
	bw := bufio.NewWriterSize(w, 1<<16)
	enc := json.NewEncoder(bw)
	// passed: the readable prefix had reached head before the last read
	// began, so an empty page then means nothing readable is left up to
	// head (only tombstones). An empty page before that may just have been
	// read while the prefix lagged, even if it has passed head since.
	passed := false
	for after := eventstore.Start; after.Less(head); {
		page, err := store.ReadAll(ctx, after, eventstore.Filter{}, readPage)
		if err != nil {
			return res, fmt.Errorf("export: read the log after %s: %w", after, err)
		}
		if len(page) == 0 {
			if passed {
				break
			}
			readable, err := store.Head(ctx)
			if err != nil {
				return res, fmt.Errorf("export: read the head of the log: %w", err)
			}
			if !readable.Less(head) {
				passed = true
				continue // read again: this read sees every event up to head
			}
			select { // the readable prefix has not reached head yet
			case <-ctx.Done():
				return res, fmt.Errorf("export: the log's readable head %s did not reach %s: %w", readable, head, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		for _, e := range page {
			if head.Less(e.Position) {
				break
			}
			if !r.Contains(e.Metadata.OccurredAt) {
				continue
			}
			if err := enc.Encode(LineOf(e)); err != nil {
				return res, fmt.Errorf("export: write event %d: %w", res.Events+1, err)
			}
			res.Events++
		}
		after = page[len(page)-1].Position
	}
	if err := bw.Flush(); err != nil {
		return res, fmt.Errorf("export: write: %w", err)
	}
	return res, nil
}

// committedHead returns the position of the last event committed now: the
// store's CommittedHead where its readable Head can lag behind
// (PostgreSQL, found through decorators), its Head elsewhere.
func committedHead(ctx context.Context, store eventstore.Store) (eventstore.Position, error) {
	if c, ok := eventstore.As[interface {
		CommittedHead(context.Context) (eventstore.Position, error)
	}](store); ok {
		return c.CommittedHead(ctx)
	}
	return store.Head(ctx)
}

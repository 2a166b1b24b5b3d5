package relay

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/processor"
	"github.com/taskqueue/taskqueue/projections"
)

// outboxRow is a message in the outbox: its UUID and the ID of the
// transaction that wrote it (32 bits, as xmin shows it).
type outboxRow struct{ uuid, xid string }

func outboxRows(t *testing.T, pool *pgxpool.Pool, types ...string) []outboxRow {
	t.Helper()
	var rows []outboxRow
	for _, typ := range types {
		table := outboxSchema().MessagesTable(Topic("taskqueue", typ))
		var exists bool
		if err := pool.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if !exists {
			continue
		}
		r, err := pool.Query(context.Background(), `SELECT uuid, (transaction_id::text::bigint & 4294967295)::text FROM `+table)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			var o outboxRow
			if err := r.Scan(&o.uuid, &o.xid); err != nil {
				t.Fatal(err)
			}
			rows = append(rows, o)
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return rows
}

// On the PostgreSQL outbox (Config.Outbox) a batch's messages and the
// checkpoint after them commit in ONE transaction: a batch whose
// checkpoint another relay moved leaves nothing in the outbox, and the
// rows of the last batch carry the ID of the transaction that last wrote
// the checkpoint.
func TestOutboxBatchCommitsWithItsCheckpoint(t *testing.T) {
	s, pool := teststore.Postgres(t, testenv.Postgres(t), 4)
	b := testreadside.Backend{Name: "postgres", Store: s, DB: projections.NewPostgresDB(pool)}
	ctx, cancel := context.WithTimeout(context.Background(), waitDeadline)
	defer cancel()
	h := commands(t, b, processor.NewManualClock(t0), domain.Rules{})
	enqueue(t, h, "gina", "chop-wood", 3) // queue.updated, task.started
	enqueue(t, h, "gina", "chop-wood", 1) // queue.updated
	// Readers see the events once no transaction of the cluster that
	// began before they committed is open (another package's test).
	var events []eventstore.RecordedEvent
	testenv.WaitUntil(t, waitDeadline, "the 3 events below the log's horizon", func() (bool, error) {
		var err error
		events, err = s.ReadAll(ctx, eventstore.Start, relayFilter, 0)
		return len(events) == 3, err
	})
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	types := []string{TypeQueueUpdated, TypeTaskStarted}

	moved, err := New(Config{Store: s, DB: b.DB, Outbox: pool, Name: "moved", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := moved.saveCheckpoint(ctx, eventstore.Start, events[0].Position); err != nil {
		t.Fatal(err)
	}
	if _, err := moved.publishOutbox(ctx, newFollowed(), events, &[2]eventstore.Position{eventstore.Start, head}); !errors.Is(err, errCheckpointMoved) {
		t.Fatalf("publish after a moved checkpoint: %v, want errCheckpointMoved", err)
	}
	if rows := outboxRows(t, pool, types...); len(rows) != 0 {
		t.Fatalf("the refused batch left %d messages in the outbox", len(rows))
	}

	r, err := New(Config{Store: s, DB: b.DB, Outbox: pool, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(rctx) }()
	testenv.WaitUntil(t, waitDeadline, "the checkpoint at the head", func() (bool, error) {
		cp, err := r.Checkpoint(ctx)
		return cp == head, err
	})
	stop()
	<-done
	rows := outboxRows(t, pool, types...)
	seen := map[string]bool{}
	for _, o := range rows {
		seen[o.uuid] = true
	}
	if len(rows) != 3 || len(seen) != 3 {
		t.Fatalf("%d messages in the outbox (%d distinct), want 3", len(rows), len(seen))
	}
	var cpXID string
	if err := pool.QueryRow(ctx, `SELECT xmin::text FROM processor_relay_checkpoints WHERE name = $1`, "integration").Scan(&cpXID); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, o := range rows {
		if o.xid == cpXID {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no message of the outbox was written by the checkpoint's transaction %s (messages by %v)", cpXID, rows)
	}
}

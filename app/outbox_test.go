package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/api/asyncapi"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/relay"
)

// On PostgreSQL without Redis the integration events go into the outbox,
// and a consumer reads them with watermill-sql's subscriber, each in the
// spec's shape, for a task started and completed by the processor.
func TestIntegrationEventsWithoutRedis(t *testing.T) {
	url := testenv.Postgres(t)
	dev := true
	a, cleanup, err := NewWithLog(context.Background(), Config{DataDir: t.TempDir(), Dev: &dev, DatabaseURL: url}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	sub, err := relay.NewOutboxSubscriber(pool, "test-consumer", watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	topic := func(typ string) string { return relay.Topic(TopicPrefix(a.Config), typ) }
	started, err := sub.Subscribe(ctx, topic(relay.TypeTaskStarted))
	if err != nil {
		t.Fatal(err)
	}
	completed, err := sub.Subscribe(ctx, topic(relay.TypeTaskCompleted))
	if err != nil {
		t.Fatal(err)
	}

	res, err := a.Commands.EnqueueTask.Handle(ctx, command.EnqueueTask{Type: "chop-wood", Count: 1,
		Request: command.Request{PlayerID: "alice", IdempotencyKey: "k1"}})
	if err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]<-chan *message.Message{relay.TypeTaskStarted: started, relay.TypeTaskCompleted: completed} {
		select {
		case m := <-ch:
			var ev relay.IntegrationEvent
			if err := json.Unmarshal(m.Payload, &ev); err != nil {
				t.Fatalf("%s payload %s: %v", name, m.Payload, err)
			}
			if ev.Type != name || ev.PlayerID != "alice" {
				t.Fatalf("%s: got %+v", name, ev)
			}
			schema, err := asyncapi.IntegrationPayload(ev.Type)
			if err != nil {
				t.Fatal(err)
			}
			if err := asyncapi.Validate(schema, m.Payload); err != nil {
				t.Errorf("%s payload against the spec: %v", name, err)
			}
			headers, _ := json.Marshal(m.Metadata)
			if err := asyncapi.Validate(asyncapi.IntegrationHeaders, headers); err != nil {
				t.Errorf("%s metadata against the spec: %v", name, err)
			}
			m.Ack()
		case <-ctx.Done():
			t.Fatalf("no %s message within a minute of task %s", name, res.Task.TaskID)
		}
	}

	// The relay writes each batch and its checkpoint in one transaction
	// (relay.Config.Outbox): the last batch's messages carry the ID of the
	// transaction that last moved the checkpoint.
	head, err := a.Store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var cpXID string
	testenv.WaitUntil(t, time.Minute, "the relay's checkpoint at the head", func() (bool, error) {
		var commit, seq int64
		err := pool.QueryRow(ctx, `SELECT commit_position, seq_position, xmin::text FROM processor_relay_checkpoints WHERE name = 'integration'`).
			Scan(&commit, &seq, &cpXID)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return uint64(commit) == head.Commit && uint64(seq) == head.Seq, err
	})
	written := 0
	for _, typ := range []string{relay.TypeTaskStarted, relay.TypeTaskCompleted, relay.TypeQueueUpdated} {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM "watermill_`+topic(typ)+`" WHERE (transaction_id::text::bigint & 4294967295)::text = $1`,
			cpXID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		written += n
	}
	if written == 0 {
		t.Fatalf("no message in the outbox was written by the transaction %s that last moved the relay's checkpoint", cpXID)
	}
}

package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/postgres"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/teststore"
)

// batchRecorder records the statements of every batch sent on a pool,
// and every statement sent alone as a batch of one (a pgx tracer).
type batchRecorder struct {
	mu      sync.Mutex
	open    map[*pgx.Conn][]string
	batches [][]string
}

func (r *batchRecorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, []string{d.SQL})
	return ctx
}
func (r *batchRecorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *batchRecorder) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (r *batchRecorder) TraceBatchQuery(_ context.Context, c *pgx.Conn, d pgx.TraceBatchQueryData) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open == nil {
		r.open = map[*pgx.Conn][]string{}
	}
	r.open[c] = append(r.open[c], d.SQL)
}

func (r *batchRecorder) TraceBatchEnd(_ context.Context, c *pgx.Conn, _ pgx.TraceBatchEndData) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, r.open[c])
	delete(r.open, c)
}

// all returns the batches with a statement containing s.
func (r *batchRecorder) all(s string) [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]string
	for _, b := range r.batches {
		for _, q := range b {
			if strings.Contains(q, s) {
				out = append(out, b)
				break
			}
		}
	}
	return out
}

// batch returns the first batch with a statement containing s.
func (r *batchRecorder) batch(s string) []string {
	if all := r.all(s); len(all) > 0 {
		return all[0]
	}
	return nil
}

// A snapshot (a cache) and the NOTIFY after an append (a wake-up) commit
// without waiting for the WAL flush, in transactions of their own that set
// synchronous_commit off for themselves only; appends keep waiting for it.
func TestSnapshotsAndNotificationsDoNotWaitForTheFlush(t *testing.T) {
	url := teststore.PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rec := &batchRecorder{}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // every statement on one connection: the check of the setting after them sees theirs
	cfg.ConnConfig.Tracer = rec
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := postgres.New(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	ev := newEvent("Snapped")
	res, err := s.Append(ctx, "snap-1", eventstore.NoStream, ev)
	if err != nil {
		t.Fatal(err)
	}
	snap := eventstore.Snapshot{Version: res.Version, EventID: ev.ID, Schema: 1, Data: []byte("state")}
	if err := s.SaveSnapshot(ctx, "snap-1", snap); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.ReadSnapshot(ctx, "snap-1")
	if err != nil || !ok || got.EventID != ev.ID || string(got.Data) != "state" {
		t.Fatalf("snapshot read back: %+v %v %v", got, ok, err)
	}
	testenv.WaitFor(t, "the NOTIFY after the append", func() bool { return rec.batch("pg_notify") != nil })

	const async = "set_config('synchronous_commit', 'off', true)"
	for _, what := range []string{"INSERT INTO stream_snapshots", "pg_notify"} {
		b := rec.batch(what)
		if len(b) != 2 || !strings.Contains(b[0], async) {
			t.Errorf("the batch of %s is %q, want it after %s in one transaction", what, b, async)
		}
	}
	// Appends, alone or in a group (a batch too), stay synchronous.
	outs, err := s.AppendMany(ctx, []eventstore.StreamAppend{
		{Stream: "snap-2", Expected: eventstore.NoStream, Events: []eventstore.EventData{newEvent("A")}},
		{Stream: "snap-3", Expected: eventstore.NoStream, Events: []eventstore.EventData{newEvent("B")}},
	})
	if err != nil || outs[0].Err != nil || outs[1].Err != nil {
		t.Fatalf("append many: %v %+v", err, outs)
	}
	appends := rec.all("INSERT INTO event_log")
	if len(appends) < 2 {
		t.Fatalf("%d appends recorded, want the single one and the group", len(appends))
	}
	for _, b := range appends {
		for _, q := range b {
			if strings.Contains(q, "synchronous_commit") {
				t.Fatalf("an append's batch sets synchronous_commit: %q", b)
			}
		}
	}
	// The setting was its transactions' own: the connection commits
	// synchronously again.
	var setting string
	if err := pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&setting); err != nil {
		t.Fatal(err)
	}
	if setting != "on" {
		t.Fatalf("synchronous_commit is %q on the store's connection after a save, want on", setting)
	}
}

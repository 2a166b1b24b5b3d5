package postgres_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/postgres"
	"github.com/taskqueue/taskqueue/eventstore/storetest"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

// benchConns is the pool size of every PostgreSQL benchmark, store and
// baseline alike.
const benchConns = 8

// BenchmarkAppend: single-event appends from 16 concurrent writers.
func BenchmarkAppend(b *testing.B) {
	storetest.BenchmarkAppend(b, func(tb testing.TB) eventstore.Store { return openStoreOpts(tb, postgres.WithMaxConns(benchConns)) })
}

// BenchmarkIdleWakeup: how soon an idle subscriber delivers a new event.
func BenchmarkIdleWakeup(b *testing.B) {
	storetest.BenchmarkIdleWakeup(b, func(tb testing.TB) eventstore.Store { return openStoreOpts(tb, postgres.WithMaxConns(benchConns)) }, 100*time.Millisecond)
}

// BenchmarkAppendNotifyInTx: BenchmarkAppend with NOTIFY inside every
// append's transaction (WithNotifyInTransaction), for the comparison in
// docs/BENCHMARKS.md.
func BenchmarkAppendNotifyInTx(b *testing.B) {
	storetest.BenchmarkAppend(b, func(tb testing.TB) eventstore.Store {
		return openStoreOpts(tb, postgres.WithMaxConns(benchConns), postgres.WithNotifyInTransaction())
	})
}

// BenchmarkIdleWakeupOtherStore: the subscriber is on a second Store over
// the same schema, as in another process; only NOTIFY (or the fallback
// poll) can wake it.
func BenchmarkIdleWakeupOtherStore(b *testing.B) {
	url := migratedURL(b)
	writer := openURL(b, url, postgres.WithMaxConns(2))
	reader := openURL(b, url, postgres.WithMaxConns(2))
	storetest.BenchmarkIdleWakeupBetween(b, writer, reader, 100*time.Millisecond)
}

// BenchmarkBaselineInsertCommit is the baseline for BenchmarkAppend: the
// same rows (an event's columns) inserted into a plain table with raw pgx,
// BEGIN + INSERT + COMMIT per row, from the same 16 writers on a pool of
// the same size, on the same server.
func BenchmarkBaselineInsertCommit(b *testing.B) {
	baseline(b, true)
}

// BenchmarkBaselineInsertAutocommit is the same without an explicit
// transaction: one statement, one round trip, like an Append.
func BenchmarkBaselineInsertAutocommit(b *testing.B) {
	baseline(b, false)
}

func baseline(b *testing.B, explicitTx bool) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testenv.Postgres(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = benchConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	_, err = pool.Exec(ctx, `CREATE TABLE plain_events (
		position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		event_id uuid NOT NULL UNIQUE, stream_id text NOT NULL, version bigint NOT NULL,
		event_type text NOT NULL, schema_version integer NOT NULL, data json NOT NULL,
		occurred_at timestamptz NOT NULL, correlation_id text NOT NULL, causation_id text NOT NULL,
		actor text NOT NULL, recorded_at timestamptz NOT NULL DEFAULT statement_timestamp())`)
	if err != nil {
		b.Fatal(err)
	}
	const insert = `INSERT INTO plain_events (event_id, stream_id, version, event_type, schema_version, data,
		occurred_at, correlation_id, causation_id, actor) VALUES ($1, $2, $3, $4, $5, $6::json, $7, $8, $9, $10)`
	at := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < storetest.BenchWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := "bench-" + uuid.NewString()[:8]
			for v := int64(1); next.Add(1) <= int64(b.N); v++ {
				args := []any{uuid.New(), stream, v, "Bench", 1, `{"n":1}`, at, "corr", "", "tester"}
				var err error
				if explicitTx {
					err = insertInTx(ctx, pool, insert, args)
				} else {
					_, err = pool.Exec(ctx, insert, args...)
				}
				if err != nil {
					failed.Store(&err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
}

func insertInTx(ctx context.Context, pool *pgxpool.Pool, insert string, args []any) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, insert, args...); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

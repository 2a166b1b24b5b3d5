package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/postgres"
	"github.com/taskqueue/taskqueue/eventstore/storetest"
)

// benchConns is the pool size of the stores of BenchmarkAppend and the
// wake-up benchmarks (BenchmarkAppendVsRawInsert gives the store Open's
// default pool, and the baselines a connection per writer).
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

// BenchmarkAppendVsRawInsert is the goal of issue 13 in one benchmark:
// in every run, b.N appends as BenchmarkAppend makes them and b.N raw
// autocommit INSERTs of an equivalent row (rawInsert), each of the 16
// writers on a connection of its own, so that 16 statements are in flight
// and PostgreSQL shares WAL flushes among their commits; the two alternate
// in slices. It reports both rates and their ratio (see
// storetest.BenchmarkAppendVsBaseline). The store gets the pool Open gives
// it by default; the baseline is not limited by it.
func BenchmarkAppendVsRawInsert(b *testing.B) {
	storetest.BenchmarkAppendVsBaseline(b, func(tb testing.TB) eventstore.Store { return openStoreOpts(tb) }, rawInsert(false))
}

// BenchmarkBaselineInsertCommit is a baseline for BenchmarkAppend: the
// same rows (an event's columns) inserted into a plain table with raw pgx,
// BEGIN + INSERT + COMMIT per row, from 16 writers each on a connection of
// its own, on the same server.
func BenchmarkBaselineInsertCommit(b *testing.B) {
	baseline(b, true)
}

// BenchmarkBaselineInsertAutocommit is the same without an explicit
// transaction: one statement, one round trip, like an Append.
func BenchmarkBaselineInsertAutocommit(b *testing.B) {
	baseline(b, false)
}

func baseline(b *testing.B, explicitTx bool) {
	op := rawInsert(explicitTx)(b)
	b.ResetTimer()
	elapsed, err := storetest.RunWriters(b.N, op)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
}

// rawInsert is the raw baseline: a plain table with an event's columns
// (an identity key, a unique event ID, a json data column) in a fresh
// schema, and an operation that inserts one row with raw pgx on writer w's
// own connection (storetest.BenchWriters of them, none shared), in
// autocommit or inside BEGIN/COMMIT.
func rawInsert(explicitTx bool) storetest.Baseline {
	return func(tb testing.TB) func(ctx context.Context, w int, seq int64) error {
		ctx := context.Background()
		cfg, err := pgxpool.ParseConfig(migratedURL(tb))
		if err != nil {
			tb.Fatal(err)
		}
		cfg.MaxConns = storetest.BenchWriters
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(pool.Close)
		_, err = pool.Exec(ctx, `CREATE TABLE plain_events (
			position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			event_id uuid NOT NULL UNIQUE, stream_id text NOT NULL, version bigint NOT NULL,
			event_type text NOT NULL, schema_version integer NOT NULL, data json NOT NULL,
			occurred_at timestamptz NOT NULL, correlation_id text NOT NULL, causation_id text NOT NULL,
			actor text NOT NULL, recorded_at timestamptz NOT NULL DEFAULT statement_timestamp())`)
		if err != nil {
			tb.Fatal(err)
		}
		conns := make([]*pgxpool.Conn, storetest.BenchWriters)
		for w := range conns {
			if conns[w], err = pool.Acquire(ctx); err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(conns[w].Release)
		}
		const insert = `INSERT INTO plain_events (event_id, stream_id, version, event_type, schema_version, data,
			occurred_at, correlation_id, causation_id, actor) VALUES ($1, $2, $3, $4, $5, $6::json, $7, $8, $9, $10)`
		at := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
		streams := make([]string, storetest.BenchWriters)
		for w := range streams {
			streams[w] = "bench-" + uuid.NewString()[:8]
		}
		return func(ctx context.Context, w int, seq int64) error {
			args := []any{uuid.New(), streams[w], seq, "Bench", 1, fmt.Sprintf(`{"n":%d}`, seq), at, "corr", "", "tester"}
			if !explicitTx {
				_, err := conns[w].Exec(ctx, insert, args...)
				return err
			}
			tx, err := conns[w].Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, insert, args...); err != nil {
				return err
			}
			return tx.Commit(ctx)
		}
	}
}

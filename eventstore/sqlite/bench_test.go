package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/storetest"
)

// Run with:
//
//	go test -run '^$' -bench . -benchtime 3s ./eventstore/sqlite
//
// BenchmarkAppend is the store; BenchmarkRawInsert* are baselines of plain
// database/sql INSERT+COMMIT of the same rows, with the same pragmas and
// the same 16 concurrent writers, into a plain table (no unique indexes, no
// version check, no idempotency lookup).

func newBenchStore(tb testing.TB) eventstore.Store {
	s, err := Open(context.Background(), filepath.Join(tb.TempDir(), "events.db"))
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	return s
}

func BenchmarkAppend(b *testing.B) { storetest.BenchmarkAppend(b, newBenchStore) }

// BenchmarkAppendVsRawInsert is the goal of issue 13 in one benchmark: in
// every run, b.N appends as BenchmarkAppend makes them and b.N raw
// INSERT+COMMITs of the same rows on one writer connection from the same
// 16 writers (BenchmarkRawInsertOneWriter's workload), alternating in
// slices. It reports both rates and their ratio (see
// storetest.BenchmarkAppendVsBaseline).
func BenchmarkAppendVsRawInsert(b *testing.B) {
	storetest.BenchmarkAppendVsBaseline(b, newBenchStore, rawInsertBaseline(1))
}

func BenchmarkIdleWakeup(b *testing.B) {
	storetest.BenchmarkIdleWakeup(b, newBenchStore, 100*time.Millisecond)
}

// BenchmarkIdleWakeupOtherStore appends through a second Store on the same
// file, as another process would: the subscriber sees it by the fallback
// poll, not the in-process wake-up.
func BenchmarkIdleWakeupOtherStore(b *testing.B) {
	path := filepath.Join(b.TempDir(), "events.db")
	open := func() *Store {
		s, err := Open(context.Background(), path)
		if err != nil {
			b.Fatalf("open: %v", err)
		}
		return s
	}
	writer, reader := open(), open()
	defer writer.Close()
	defer reader.Close()
	storetest.BenchmarkIdleWakeupBetween(b, writer, reader, 100*time.Millisecond)
}

// BenchmarkRawInsertOneWriter is the baseline on one writer connection, as
// the store writes.
func BenchmarkRawInsertOneWriter(b *testing.B) { benchRawInsert(b, rawInsertBaseline(1)) }

// BenchmarkRawInsertPool lets the 16 writers have a connection each and
// contend for the file's write lock through busy_timeout, the naive setup
// the store avoids.
func BenchmarkRawInsertPool(b *testing.B) {
	benchRawInsert(b, rawInsertBaseline(storetest.BenchWriters))
}

// BenchmarkRawInsertTxOneWriter is the one-writer baseline with explicit
// BEGIN IMMEDIATE ... COMMIT around each INSERT.
func BenchmarkRawInsertTxOneWriter(b *testing.B) { benchRawInsert(b, rawInsertTxBaseline(1)) }

func benchRawInsert(b *testing.B, baseline storetest.Baseline) {
	op := baseline(b)
	b.ReportAllocs()
	b.ResetTimer()
	elapsed, err := storetest.RunWriters(b.N, op)
	b.StopTimer()
	if err != nil {
		b.Fatalf("insert: %v", err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
}

// rawInsertBaseline is the raw baseline, written as a user would write it
// fastest: a plain table with an event's columns (rowid key, no other
// index) in a fresh file with the store's pragmas (WAL,
// synchronous=NORMAL: the same durability), one INSERT statement prepared
// once and kept, each row committed on its own by running it in autocommit
// (SQLite's implicit transaction: INSERT and COMMIT in one call, no BEGIN
// or COMMIT round trips through database/sql), on a pool of conns
// connections. rawInsertTxBaseline is the same with explicit BEGIN
// IMMEDIATE ... COMMIT, as the store's transactions are.
func rawInsertBaseline(conns int) storetest.Baseline {
	return rawBaseline(conns, false)
}

// rawInsertTxBaseline is rawInsertBaseline with each INSERT in an explicit
// BEGIN IMMEDIATE ... COMMIT.
func rawInsertTxBaseline(conns int) storetest.Baseline {
	return rawBaseline(conns, true)
}

func rawBaseline(conns int, explicitTx bool) storetest.Baseline {
	return func(tb testing.TB) func(ctx context.Context, w int, seq int64) error {
		ctx := context.Background()
		db, err := sql.Open("sqlite", dsn(filepath.Join(tb.TempDir(), "raw.db"), url.Values{"_txlock": {"immediate"}}))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		db.SetMaxOpenConns(conns)
		db.SetMaxIdleConns(conns)
		if _, err := db.ExecContext(ctx, `CREATE TABLE raw_events (
			position INTEGER PRIMARY KEY, stream_id TEXT, version INTEGER, event_id TEXT, event_type TEXT,
			schema_version INTEGER, data BLOB, occurred_at INTEGER, correlation_id TEXT, causation_id TEXT,
			actor TEXT, recorded_at INTEGER)`); err != nil {
			tb.Fatal(err)
		}
		stmt, err := db.PrepareContext(ctx, `INSERT INTO raw_events
			(stream_id, version, event_id, event_type, schema_version, data, occurred_at, correlation_id, causation_id, actor, recorded_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { stmt.Close() })
		occurred := time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC).UnixMicro()
		streams := make([]string, storetest.BenchWriters)
		for w := range streams {
			streams[w] = fmt.Sprintf("bench-%d", w)
		}
		return func(ctx context.Context, w int, seq int64) error {
			args := []any{streams[w], seq, uuid.NewString(), "Bench", 1, []byte(fmt.Sprintf(`{"n":%d}`, seq)), occurred, "corr", "", "tester",
				time.Now().UnixMicro()}
			if !explicitTx {
				_, err := stmt.ExecContext(ctx, args...)
				return err
			}
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback() //nolint:errcheck // a no-op after Commit
			if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...); err != nil {
				return err
			}
			return tx.Commit()
		}
	}
}

package faults_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite"

	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

// check asserts the kind of a real error, wrapped as callers wrap it and
// as text only (through a bus that keeps the message).
func check(t *testing.T, name string, err error, want faults.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", name)
	}
	wrapped := fmt.Errorf("apply events to queue_status: %w", err)
	if got := faults.Classify(wrapped); got != want {
		t.Errorf("%s: Classify(%q) = %s, want %s", name, err, got, want)
	}
	if got := faults.Classify(errors.New(wrapped.Error())); got != want {
		t.Errorf("%s as text: Classify(%q) = %s, want %s", name, err, got, want)
	}
}

func TestPostgresErrors(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE k (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `INSERT INTO k VALUES (1), (1)`)
	check(t, "unique violation", err, faults.Permanent)
	_, err = pool.Exec(ctx, `SELECT nope FROM k`)
	check(t, "undefined column", err, faults.Permanent)
	_, err = pool.Exec(ctx, `SELECT 1/0`)
	check(t, "division by zero", err, faults.Permanent)

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = tx.Exec(ctx, `SET LOCAL statement_timeout = '50ms'`)
	_, err = tx.Exec(ctx, `SELECT pg_sleep(1)`)
	check(t, "statement timeout", err, faults.Unavailable)
	_ = tx.Rollback(ctx)

	// The server refuses the connection with a FATAL (here: no such
	// database; on a full disk also "could not write init file", XX000):
	// no statement ran, so it is never about the data.
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/taskqueue_no_such_database"
	_, err = pgx.Connect(ctx, u.String())
	check(t, "FATAL at connection start", err, faults.Unavailable)

	// The proxy goes away under an open connection, then refuses new ones.
	proxied, proxy := testenv.ProxyPostgres(t, dsn)
	conn, err := pgx.Connect(ctx, proxied)
	if err != nil {
		t.Fatal(err)
	}
	proxy.Stop()
	_, err = conn.Exec(ctx, `SELECT 1`)
	check(t, "connection cut", err, faults.Unavailable)
	_, err = conn.Exec(ctx, `SELECT 1`)
	check(t, "closed connection used", err, faults.Unavailable)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = pgx.Connect(cctx, proxied)
	check(t, "connection refused", err, faults.Unavailable)

	// A partition: the connection is held open and nothing comes back.
	proxy.Start(t)
	conn, err = pgx.Connect(ctx, proxied)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	proxy.Partition()
	qctx, qcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer qcancel()
	_, err = conn.Exec(qctx, `SELECT 1`)
	check(t, "partitioned", err, faults.Unavailable)
	proxy.Heal()
}

func TestSQLiteErrors(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "f.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE k (id INTEGER PRIMARY KEY, b BLOB)`); err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`INSERT INTO k VALUES (1, NULL), (1, NULL)`)
	check(t, "unique violation", err, faults.Permanent)
	_, err = db.Exec(`SELECT nope FROM k`)
	check(t, "no such column", err, faults.Permanent)
	if _, err := db.Exec(`PRAGMA max_page_count = 8`); err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`INSERT INTO k VALUES (2, zeroblob(100000))`)
	check(t, "full", err, faults.StorageFull)
}

// A Redis that refuses writes: its maxmemory reached under noeviction
// (OOM), through a plain command and through a script.
func TestRedisErrors(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx := context.Background()
	check(t, "missing key", c.Get(ctx, "missing").Err(), faults.Permanent)
	for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", "1"}} {
		if err := c.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	check(t, "SET over maxmemory", c.Set(ctx, "k", "v", 0).Err(), faults.StorageFull)
	check(t, "XADD over maxmemory", c.XAdd(ctx, &redis.XAddArgs{Stream: "s", Values: []string{"f", "v"}}).Err(), faults.StorageFull)
	script := redis.NewScript(`return redis.call('SET', KEYS[1], ARGV[1])`)
	check(t, "a script's SET over maxmemory", script.Run(ctx, c, []string{"k"}, "v").Err(), faults.StorageFull)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING over maxmemory: %v (reads still answer)", err)
	}
}

func TestOtherErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = net.DialTimeout("tcp", addr, time.Second)
	check(t, "dial refused", err, faults.Unavailable)
	check(t, "sentinel", fmt.Errorf("x: %w", faults.ErrUnavailable), faults.Unavailable)
	check(t, "storage sentinel", fmt.Errorf("x: %w", faults.ErrStorageFull), faults.StorageFull)
	for _, s := range []string{
		"repetition 3 of chop-wood, which is not the head",
		"loading the queue of alice: unknown event type",
		"checkpoint moved or generation retired by another runner",
	} {
		check(t, s, errors.New(s), faults.Permanent)
	}
	if faults.Transient(nil) {
		t.Error("nil is transient")
	}
}

package kurrentdb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/kurrentdb"
	"github.com/taskqueue/taskqueue/eventstore/storetest"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

// open returns a store on the server TASKQUEUE_TEST_KURRENTDB_URL names,
// in a namespace of its own, so it starts empty on a shared server.
func open(t testing.TB) eventstore.Store {
	t.Helper()
	url := testenv.KurrentDB(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := kurrentdb.Open(ctx, kurrentdb.Config{URL: url, Namespace: "t" + hex.EncodeToString(b) + "-"})
	if err != nil {
		t.Fatalf("open kurrentdb: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestContract runs the port's contract suite on a real KurrentDB server.
// It skips when TASKQUEUE_TEST_KURRENTDB_URL is not set (see the package
// doc for how to start one).
func TestContract(t *testing.T) {
	testenv.KurrentDB(t)
	storetest.Run(t, storetest.Harness{
		PagesMayCutAppends: "kurrentdb: ReadAll pages are not extended to the end of an append (eventstore.Store.ReadAll)",
		AppendManyPerStream: "kurrentdb: no transaction across streams; AppendMany stores each append on its own " +
			"(see the package doc)",
		New: func(t *testing.T) eventstore.Store { return open(t) },
		HoldAppendSkipReason: "KurrentDB commits appends to $all in one order and exposes no open " +
			"transaction to hold; its readers never see commits out of order",
	})
}

func BenchmarkAppend(b *testing.B) {
	storetest.BenchmarkAppend(b, open)
}

// No server listens on port 1: Open must fail, not hang or succeed.
func TestOpenFailsWithoutServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := kurrentdb.Open(ctx, kurrentdb.Config{URL: "esdb://127.0.0.1:1?tls=false&maxDiscoverAttempts=1&discoveryInterval=10"})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded with no server")
	}
	if _, err := kurrentdb.Open(ctx, kurrentdb.Config{}); err == nil {
		t.Fatal("Open accepted an empty URL")
	}
	if _, err := kurrentdb.Open(ctx, kurrentdb.Config{URL: "esdb://127.0.0.1:1", Namespace: "$sys"}); err == nil {
		t.Fatal("Open accepted a '$' namespace")
	}
}

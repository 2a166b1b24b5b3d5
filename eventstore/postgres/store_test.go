package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/postgres"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

func newEvent(typ string) eventstore.EventData {
	return eventstore.EventData{ID: uuid.New(), Type: typ, Data: []byte(`{}`), Metadata: eventstore.Metadata{OccurredAt: time.Unix(1e9, 0)}}
}

func next(t *testing.T, sub eventstore.Subscription) []eventstore.RecordedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	evs, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return evs
}

// A killed listener connection is replaced, and subscriptions keep going.
func TestListenerReconnects(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	sub, err := s.Subscribe(ctx, eventstore.Start, eventstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var first uint32
	testenv.WaitFor(t, "the listener to connect", func() bool { first = postgres.ListenerPID(s); return first != 0 })

	var killed bool
	if err := s.Pool().QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int32(first)).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate listener backend %d: %v, %v", first, killed, err)
	}
	testenv.WaitFor(t, "a new listener connection", func() bool {
		pid := postgres.ListenerPID(s)
		return pid != 0 && pid != first
	})
	e := newEvent("AfterReconnect")
	if _, err := s.Append(ctx, "reconnect", eventstore.NoStream, e); err != nil {
		t.Fatal(err)
	}
	if got := next(t, sub); len(got) != 1 || got[0].ID != e.ID {
		t.Fatalf("after reconnect delivered %v, want %s", got, e.ID)
	}
}

// Any open transaction that has written (not only appends) holds global
// readers back; it never makes them skip, and they resume when it ends.
func TestOpenTransactionDelaysReaders(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	before, err := s.Append(ctx, "delay-1", eventstore.NoStream, newEvent("Before"))
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the first event to be readable", func() bool {
		h, err := s.Head(ctx)
		return err == nil && h == before.Position
	})
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE unrelated (x int); INSERT INTO unrelated VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	after, err := s.Append(ctx, "delay-2", eventstore.NoStream, newEvent("After"))
	if err != nil {
		t.Fatal(err)
	}
	if h, err := s.Head(ctx); err != nil || h != before.Position {
		t.Fatalf("head while a transaction is open = %v, %v; want %v (held back)", h, err, before.Position)
	}
	if evs, err := s.ReadAll(ctx, before.Position, eventstore.Filter{}, 0); err != nil || len(evs) != 0 {
		t.Fatalf("read all while a transaction is open = %d events, %v; want none yet", len(evs), err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the held-back event", func() bool {
		evs, err := s.ReadAll(ctx, before.Position, eventstore.Filter{}, 0)
		return err == nil && len(evs) == 1 && evs[0].Position == after.Position
	})
}

func TestAppendTxMustBeFirstWrite(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE earlier (x int); INSERT INTO earlier VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendTx(ctx, tx, "tx-1", eventstore.Any, newEvent("A")); err == nil {
		t.Fatal("AppendTx after another write in the transaction succeeded")
	}
}

func TestAppendTxKeepsTransactionUsable(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, "tx-2", eventstore.NoStream, newEvent("A")); err != nil {
		t.Fatal(err)
	}
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	_, err = s.AppendTx(ctx, tx, "tx-2", eventstore.NoStream, newEvent("B"))
	if !errors.Is(err, eventstore.ErrWrongVersion) {
		t.Fatalf("AppendTx with a wrong version: %v", err)
	}
	res, err := s.AppendTx(ctx, tx, "tx-2", eventstore.Exact(1), newEvent("C"))
	if err != nil || res.Version != 2 {
		t.Fatalf("AppendTx after a failed one in the same transaction = %+v, %v", res, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := s.StreamVersion(ctx, "tx-2"); err != nil || v != 2 {
		t.Fatalf("stream version = %d, %v; want 2", v, err)
	}
}

func TestOpenWithoutSchemaSaysSo(t *testing.T) {
	url := testenv.Postgres(t)
	_, err := postgres.Open(context.Background(), url, postgres.WithMaxConns(2))
	if err == nil || !strings.Contains(err.Error(), "migrat") {
		t.Fatalf("open on an empty schema: %v, want an error that says to migrate", err)
	}
}

// Data keeps its bytes: the column is json, not jsonb.
// A subscriber on another Store (another process) sees appends: through
// NOTIFY, or at worst the fallback poll.
func TestSubscriberOfAnotherStore(t *testing.T) {
	url := migratedURL(t)
	writer := openURL(t, url, postgres.WithMaxConns(2))
	reader := openURL(t, url, postgres.WithMaxConns(2))
	sub, err := reader.Subscribe(context.Background(), eventstore.Start, eventstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := 0; i < 3; i++ {
		e := newEvent("Remote")
		if _, err := writer.Append(context.Background(), "remote", eventstore.Any, e); err != nil {
			t.Fatal(err)
		}
		if got := next(t, sub); len(got) != 1 || got[0].ID != e.ID {
			t.Fatalf("reader delivered %v, want %s", got, e.ID)
		}
	}
}

func TestDataColumnKeepsText(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	e := newEvent("Spaced")
	e.Data = []byte(`{ "b" :1,"a":  2 }`)
	if _, err := s.Append(ctx, "text-1", eventstore.NoStream, e); err != nil {
		t.Fatal(err)
	}
	var raw string
	if err := s.Pool().QueryRow(ctx, `SELECT data::text FROM event_log WHERE event_id = $1`, e.ID).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if raw != string(e.Data) {
		t.Fatalf("stored %q, want %q", raw, e.Data)
	}
}

// A position without a commit part ("1042", as SQLite hands them out) is
// not a PostgreSQL position: read as one it would sit before every event
// and replay the whole log. ReadAll and Subscribe refuse it with
// ErrInvalid; Start ("0") stays valid.
func TestPositionOfAnotherStoreIsInvalid(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := s.Append(ctx, "foreign", eventstore.Any, newEvent("E")); err != nil {
			t.Fatal(err)
		}
	}
	foreign := eventstore.Position{Seq: 2}
	if evs, err := s.ReadAll(ctx, foreign, eventstore.Filter{}, 0); !errors.Is(err, eventstore.ErrInvalid) {
		t.Errorf("ReadAll after %s = %d events, %v; want ErrInvalid", foreign, len(evs), err)
	}
	if sub, err := s.Subscribe(ctx, foreign, eventstore.Filter{}); !errors.Is(err, eventstore.ErrInvalid) {
		if sub != nil {
			sub.Close()
		}
		t.Errorf("Subscribe after %s: %v; want ErrInvalid", foreign, err)
	}
	testenv.WaitFor(t, "the events to be readable", func() bool {
		evs, err := s.ReadAll(ctx, eventstore.Start, eventstore.Filter{}, 0)
		return err == nil && len(evs) == 3
	})
}

// CommittedHead sees an append that an older open transaction holds back
// from Head and ReadAll; Head reaches it once that transaction ends.
func TestCommittedHeadIncludesHeldBackEvents(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	before, err := s.Append(ctx, "committed-1", eventstore.NoStream, newEvent("Before"))
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the first event to be readable", func() bool {
		h, err := s.Head(ctx)
		return err == nil && h == before.Position
	})
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := s.AppendTx(ctx, tx, "committed-held", eventstore.NoStream, newEvent("Held")); err != nil {
		t.Fatal(err)
	}
	after, err := s.Append(ctx, "committed-2", eventstore.NoStream, newEvent("After"))
	if err != nil {
		t.Fatal(err)
	}
	if h, err := s.CommittedHead(ctx); err != nil || h != after.Position {
		t.Fatalf("committed head = %v, %v; want %v", h, err, after.Position)
	}
	if h, err := s.Head(ctx); err != nil || h != before.Position {
		t.Fatalf("head = %v, %v; want %v (held back)", h, err, before.Position)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the head to pass the committed head", func() bool {
		h, err := s.Head(ctx)
		return err == nil && !h.Less(after.Position)
	})
}

// Horizon reports a writing transaction that holds the log's readers back,
// and the committed events waiting behind it. (The server is shared with
// other tests, so an older transaction may be the one named: the age is at
// least ours.)
func TestHorizonReportsAHeldLog(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var pid int32
	var xid string
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid(), pg_current_xact_id()::text`).Scan(&pid, &xid); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if _, err := s.Append(ctx, "horizon-"+uuid.NewString(), eventstore.NoStream, newEvent("Behind")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	h, err := s.Horizon(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if held := time.Since(began); h.Age < held-100*time.Millisecond {
		t.Fatalf("horizon age %v, want at least the %v our transaction has been open", h.Age, held)
	}
	if h.Unreadable < 1 {
		t.Fatalf("horizon counts %d events waiting, want the one appended behind our transaction", h.Unreadable)
	}
	if h.PID == pid && (h.Database == "" || !strings.Contains(h.String(), "open for")) {
		t.Fatalf("horizon names our transaction without its details: %+v", h)
	}
}

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

// queued waits until the gate holds n appends and m other waiters.
func queued(t *testing.T, g *writeGate, n, m int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		g.mu.Lock()
		a, o := len(g.appends), len(g.others)
		g.mu.Unlock()
		if a == n && o == m {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gate queues: %d appends and %d others, want %d and %d", a, o, n, m)
		}
		time.Sleep(time.Millisecond)
	}
}

func newReq(ctx context.Context, stream string) *appendReq {
	return &appendReq{ctx: ctx, stream: stream, lead: make(chan struct{}), done: make(chan struct{})}
}

// TestWriteGateOrder: appends in arrival order and ahead of the others,
// but no more than appendsAhead append transactions while another waits.
func TestWriteGateOrder(t *testing.T) {
	ctx := context.Background()
	var g writeGate
	if err := g.enter(ctx); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	got := func(name string) {
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
		g.leave()
	}
	tx := func(name string) {
		defer wg.Done()
		if err := g.enter(ctx); err != nil {
			t.Error(err)
			return
		}
		got(name)
	}
	app := func(name string) {
		defer wg.Done()
		lead, err := g.enterAppend(newReq(ctx, name))
		if err != nil || !lead {
			t.Errorf("append %s: lead %v, err %v", name, lead, err)
			return
		}
		got(name) // a group of one: takes no followers
	}
	wg.Add(2)
	go tx("tx1")
	queued(t, &g, 0, 1)
	go tx("tx2")
	queued(t, &g, 0, 2)
	const n = appendsAhead + 3
	for i := range n {
		wg.Add(1)
		go app(fmt.Sprintf("a%d", i))
		queued(t, &g, i+1, 2)
	}
	g.leave()
	wg.Wait()

	var want []string
	for i := range appendsAhead {
		want = append(want, fmt.Sprintf("a%d", i))
	}
	want = append(want, "tx1")
	for i := appendsAhead; i < n; i++ {
		want = append(want, fmt.Sprintf("a%d", i))
	}
	want = append(want, "tx2")
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("order %v\nwant  %v", order, want)
	}
}

// TestWriteGateCancel: a waiter whose context ends leaves the queue, and
// the gate still goes to the next one.
func TestWriteGateCancel(t *testing.T) {
	ctx := context.Background()
	var g writeGate
	if err := g.enter(ctx); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := g.enterAppend(newReq(cctx, "a"))
		errc <- err
	}()
	queued(t, &g, 1, 0)
	done := make(chan struct{})
	go func() {
		if err := g.enter(ctx); err != nil {
			t.Error(err)
		}
		close(done)
	}()
	queued(t, &g, 1, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("enterAppend with a cancelled context: %v", err)
	}
	queued(t, &g, 0, 1)
	g.leave()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the next waiter did not get the gate")
	}
	g.leave()
	if g.busy {
		t.Error("gate still busy after everyone left")
	}
}

func anEvent() eventstore.EventData {
	return eventstore.EventData{ID: uuid.New(), Type: "Happened", Data: json.RawMessage(`{}`),
		Metadata: eventstore.Metadata{OccurredAt: time.Now()}}
}

// TestAppendGroup: appends queued while the writer is busy commit as one
// group, each with its own outcome, in arrival order; one that fails or
// whose context ended leaves the others stored.
func TestAppendGroup(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	hold, release := make(chan struct{}), make(chan struct{})
	go func() {
		_ = s.WriteTx(ctx, func(*sql.Tx) error {
			close(hold)
			<-release
			return nil
		})
	}()
	<-hold
	cctx, cancel := context.WithCancel(ctx)
	type outcome struct {
		res eventstore.AppendResult
		err error
	}
	calls := []struct {
		ctx      context.Context
		stream   string
		expected eventstore.ExpectedVersion
	}{
		{ctx, "s-1", eventstore.NoStream},
		{ctx, "s-2", eventstore.NoStream},
		{ctx, "s-1", eventstore.NoStream},  // s-1 exists by then
		{cctx, "s-3", eventstore.NoStream}, // cancelled while queued
		{ctx, "s-1", eventstore.Exact(1)},
	}
	outs := make([]outcome, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i].res, outs[i].err = s.Append(c.ctx, c.stream, c.expected, anEvent())
		}()
		queued(t, &s.gate, i+1, 0)
	}
	cancel()
	queued(t, &s.gate, len(calls)-1, 0)
	close(release)
	wg.Wait()

	want := []string{"s-1 v1 @1", "s-2 v1 @2", "wrong version", "cancelled", "s-1 v2 @3"}
	for i, o := range outs {
		var got string
		var wv *eventstore.WrongVersionError
		switch {
		case o.err == nil:
			got = fmt.Sprintf("%s v%d @%d", calls[i].stream, o.res.Version, o.res.Position.Seq)
		case errors.As(o.err, &wv):
			got = "wrong version"
		case errors.Is(o.err, context.Canceled):
			got = "cancelled"
		default:
			got = o.err.Error()
		}
		if got != want[i] {
			t.Errorf("append %d: %s, want %s", i, got, want[i])
		}
	}
	if v, err := s.StreamVersion(ctx, "s-3"); err != nil || v != 0 {
		t.Errorf("cancelled append: stream version %d (%v), want 0", v, err)
	}
	if head, err := s.Head(ctx); err != nil || head.Seq != 3 {
		t.Errorf("head %v (%v), want 3", head, err)
	}
}

// TestAppendGoesBeforeWaitingWriteTx: on a Store, an append that comes
// while a WriteTx transaction already waits for the writer commits first.
// (Without the gate database/sql picks either at random.)
func TestAppendGoesBeforeWaitingWriteTx(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.WriteTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE read_model (head INTEGER)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}

	hold, release := make(chan struct{}), make(chan struct{})
	go func() {
		_ = s.WriteTx(ctx, func(*sql.Tx) error {
			close(hold)
			<-release
			return nil
		})
	}()
	<-hold
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		// Records the head of the log it saw: 0 if it ran before the append.
		err := s.WriteTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO read_model SELECT COALESCE(MAX(position), 0) FROM events`)
			return err
		})
		if err != nil {
			t.Error(err)
		}
	}()
	queued(t, &s.gate, 0, 1)
	go func() {
		defer wg.Done()
		if _, err := s.Append(ctx, "s-1", eventstore.Any, anEvent()); err != nil {
			t.Error(err)
		}
	}()
	queued(t, &s.gate, 1, 1)
	close(release)
	wg.Wait()
	var head int64
	if err := s.ReadDB().QueryRowContext(ctx, `SELECT head FROM read_model`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	if head != 1 {
		t.Errorf("the waiting transaction saw head %d: it ran before the append that came later", head)
	}
}

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

// TestWriteGateOrder: appends in arrival order and ahead of the others,
// but no more than appendsAhead of them while another waits.
func TestWriteGateOrder(t *testing.T) {
	ctx := context.Background()
	var g writeGate
	if err := g.enter(ctx, false); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	wait := func(name string, first bool) {
		defer wg.Done()
		if err := g.enter(ctx, first); err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
		g.leave()
	}
	wg.Add(2)
	go wait("tx1", false)
	queued(t, &g, 0, 1)
	go wait("tx2", false)
	queued(t, &g, 0, 2)
	const n = appendsAhead + 3
	for i := range n {
		wg.Add(1)
		go wait(fmt.Sprintf("a%d", i), true)
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
	if err := g.enter(ctx, false); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- g.enter(cctx, true) }()
	queued(t, &g, 1, 0)
	done := make(chan struct{})
	go func() {
		if err := g.enter(ctx, false); err != nil {
			t.Error(err)
		}
		close(done)
	}()
	queued(t, &g, 1, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("enter with a cancelled context: %v", err)
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
		e := eventstore.EventData{ID: uuid.New(), Type: "Happened", Data: json.RawMessage(`{}`),
			Metadata: eventstore.Metadata{OccurredAt: time.Now()}}
		if _, err := s.Append(ctx, "s-1", eventstore.Any, e); err != nil {
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

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
	return &appendReq{ctx: ctx, parts: []appendPart{{stream: stream}}, lead: make(chan struct{}), done: make(chan struct{})}
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

// TestAppendManyInGroup: an AppendMany call queued with single appends
// commits in their transaction, its appends each with its own outcome; a
// database error in the transaction fails every call of the group and
// stores none of it.
func TestAppendManyInGroup(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// A trigger stands in for a database failure in the middle of the
	// transaction (what a full disk or an I/O error does).
	if err := s.WriteTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TRIGGER boom BEFORE INSERT ON events
			WHEN NEW.stream_id = 'boom' BEGIN SELECT RAISE(ABORT, 'the disk broke'); END`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	group := func(withBoom bool) (single [2]error, outs []eventstore.AppendOutcome, manyErr error) {
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
		wg.Add(3)
		go func() {
			defer wg.Done()
			_, single[0] = s.Append(ctx, "g-single-1", eventstore.Any, anEvent())
		}()
		queued(t, &s.gate, 1, 0)
		go func() {
			defer wg.Done()
			appends := []eventstore.StreamAppend{
				{Stream: "g-many-1", Expected: eventstore.Any, Events: []eventstore.EventData{anEvent(), anEvent()}},
				{Stream: "g-many-wrong", Expected: eventstore.Exact(9), Events: []eventstore.EventData{anEvent()}},
				{Stream: "g-many-2", Expected: eventstore.Any, Events: []eventstore.EventData{anEvent()}},
			}
			if withBoom {
				appends = append(appends, eventstore.StreamAppend{Stream: "boom", Expected: eventstore.Any, Events: []eventstore.EventData{anEvent()}})
			}
			outs, manyErr = s.AppendMany(ctx, appends)
		}()
		queued(t, &s.gate, 2, 0)
		go func() {
			defer wg.Done()
			_, single[1] = s.Append(ctx, "g-single-2", eventstore.Any, anEvent())
		}()
		queued(t, &s.gate, 3, 0)
		close(release)
		wg.Wait()
		return single, outs, manyErr
	}

	single, outs, err := group(true)
	if err == nil || errors.Is(err, eventstore.ErrInvalid) || errors.Is(err, eventstore.ErrWrongVersion) {
		t.Fatalf("AppendMany in a group that hit a database error: %+v, %v; want the database's error", outs, err)
	}
	if single[0] == nil || single[1] == nil {
		t.Fatalf("appends in a group that hit a database error: %v", single)
	}
	if head, err := s.Head(ctx); err != nil || head.Seq != 0 {
		t.Fatalf("head %v (%v): the failed group stored something", head, err)
	}

	single, outs, err = group(false)
	if err != nil || single[0] != nil || single[1] != nil {
		t.Fatalf("group: %v, %v", err, single)
	}
	var wv *eventstore.WrongVersionError
	if outs[0].Err != nil || outs[2].Err != nil || !errors.As(outs[1].Err, &wv) {
		t.Fatalf("outcomes %+v", outs)
	}
	// One transaction, in arrival order: single-1, the call's appends, single-2.
	if outs[0].Position.Seq != 3 || outs[2].Position.Seq != 4 {
		t.Errorf("the call's appends at %v and %v, want 3 and 4", outs[0].Position, outs[2].Position)
	}
	if head, err := s.Head(ctx); err != nil || head.Seq != 5 {
		t.Errorf("head %v (%v), want 5", head, err)
	}
}

// TestAppendGroupRedoneAfterConstraint: a group's INSERT that meets an
// event ID already stored (a retry with Any) rolls back, and the group
// runs again append by append in one new transaction: the retry is a
// duplicate, the other appends are stored once, together.
func TestAppendGroupRedoneAfterConstraint(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	retried := anEvent()
	first, err := s.Append(ctx, "r-retried", eventstore.Any, retried)
	if err != nil {
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
	calls := []struct {
		stream string
		event  eventstore.EventData
	}{{"r-1", anEvent()}, {"r-retried", retried}, {"r-2", anEvent()}}
	res := make([]eventstore.AppendResult, len(calls))
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = s.Append(ctx, c.stream, eventstore.Any, c.event)
		}()
		queued(t, &s.gate, i+1, 0)
	}
	close(release)
	wg.Wait()
	if errors.Join(errs...) != nil {
		t.Fatal(errors.Join(errs...))
	}
	if !res[1].Duplicate || res[1].Position != first.Position {
		t.Errorf("retry = %+v, want the first result %+v as a duplicate", res[1], first)
	}
	if res[0].Position.Seq != 2 || res[2].Position.Seq != 3 || res[0].Duplicate || res[2].Duplicate {
		t.Errorf("appends beside the retry: %+v, %+v; want positions 2 and 3", res[0], res[2])
	}
	if head, err := s.Head(ctx); err != nil || head.Seq != 3 {
		t.Errorf("head %v (%v), want 3", head, err)
	}
}

// TestGroupReadsVersionsOfAnyStreamID: a group reads its streams' versions
// through a JSON array; quotes and backslashes in stream IDs survive it.
func TestGroupReadsVersionsOfAnyStreamID(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	streams := []string{`a"b`, `c\d`, `e\"f`, `g\\`, "ünï ✓"}
	for round := int64(0); round < 3; round++ {
		appends := make([]eventstore.StreamAppend, len(streams))
		for i, stream := range streams {
			appends[i] = eventstore.StreamAppend{Stream: stream, Expected: eventstore.Exact(round), Events: []eventstore.EventData{anEvent()}}
		}
		outs, err := s.AppendMany(ctx, appends)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range outs {
			if o.Err != nil || o.Version != round+1 {
				t.Fatalf("round %d, stream %q: %+v, %v", round, streams[i], o.AppendResult, o.Err)
			}
		}
	}
}

package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/postgres"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

// holdStream appends to stream in a transaction left open: it holds the
// stream's lock until the returned function commits it.
func holdStream(t *testing.T, s *postgres.Store, stream string) (commit func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendTx(ctx, tx, stream, eventstore.Any, newEvent("Held")); err != nil {
		_ = tx.Rollback(ctx)
		t.Fatal(err)
	}
	var once sync.Once
	commit = func() {
		once.Do(func() {
			if err := tx.Commit(ctx); err != nil {
				t.Errorf("commit the held append: %v", err)
			}
		})
	}
	t.Cleanup(commit)
	return commit
}

// lockWaiter waits until a backend waits for stream's lock (its row of
// stream_locks: a waiter holds the row's tuple lock while it waits for the
// holder's transaction) and returns its PID.
func lockWaiter(t *testing.T, s *postgres.Store, stream string) int32 {
	t.Helper()
	var pid int32
	testenv.WaitFor(t, "a backend waiting for the lock of "+stream, func() bool {
		err := s.Pool().QueryRow(context.Background(), `SELECT l.pid FROM pg_locks AS l, stream_locks AS k
			WHERE k.slot = hashtext($1) & 65535 AND l.locktype = 'tuple' AND l.relation = 'stream_locks'::regclass
				AND l.page = (k.ctid::text::point)[0] AND l.tuple = (k.ctid::text::point)[1]
			LIMIT 1`, stream).Scan(&pid)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		return err == nil
	})
	return pid
}

// Appends that queue while the lane is busy commit together, in one
// transaction (one transaction ID), each with its own outcome.
func TestGroupCommitSharesOneTransaction(t *testing.T) {
	s := openStoreOpts(t, postgres.WithMaxConns(4), postgres.WithAppendLanes(1))
	ctx := context.Background()
	foreign := newEvent("Foreign")
	if _, err := s.Append(ctx, "group-home", eventstore.NoStream, foreign); err != nil {
		t.Fatal(err)
	}
	commit := holdStream(t, s, "group-held")
	// The one lane waits for the held stream's lock...
	blocked := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "group-held", eventstore.Any, newEvent("Blocked"))
		blocked <- err
	}()
	lockWaiter(t, s, "group-held")

	// ...while these queue behind it.
	type call struct {
		stream   string
		expected eventstore.ExpectedVersion
		event    eventstore.EventData
	}
	calls := []call{
		{"group-1", eventstore.NoStream, newEvent("A")},
		{"group-2", eventstore.Any, newEvent("A")},
		{"group-wrong", eventstore.Exact(3), newEvent("A")},
		{"group-foreign", eventstore.NoStream, foreign},
		{"group-3", eventstore.NoStream, newEvent("A")},
	}
	results := make([]eventstore.AppendResult, len(calls)+2)
	errs := make([]error, len(calls)+1)
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Append(ctx, c.stream, c.expected, c.event)
		}()
		testenv.WaitFor(t, "the append to queue", func() bool { return postgres.QueuedAppends(s) == i+1 })
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		outs, err := s.AppendMany(ctx, []eventstore.StreamAppend{
			{Stream: "group-many-1", Expected: eventstore.NoStream, Events: []eventstore.EventData{newEvent("M"), newEvent("M")}},
			{Stream: "group-many-2", Expected: eventstore.NoStream, Events: []eventstore.EventData{newEvent("M")}},
		})
		if errs[len(calls)] = err; err == nil {
			results[len(calls)], results[len(calls)+1] = outs[0].AppendResult, outs[1].AppendResult
			errs[len(calls)] = errors.Join(outs[0].Err, outs[1].Err)
		}
	}()
	testenv.WaitFor(t, "the call to queue", func() bool { return postgres.QueuedAppends(s) == len(calls)+1 })
	commit()
	if err := <-blocked; err != nil {
		t.Fatalf("the append that waited for the lock: %v", err)
	}
	wg.Wait()

	var wv *eventstore.WrongVersionError
	if !errors.As(errs[2], &wv) || wv.Actual != 0 {
		t.Errorf("append with a wrong version: %v", errs[2])
	}
	if !errors.Is(errs[3], eventstore.ErrInvalid) {
		t.Errorf("append of an event stored in another stream: %v", errs[3])
	}
	stored := []int{0, 1, 4, 5, 6}
	xid := results[0].Position.Commit
	for _, i := range stored {
		if i < len(calls) && errs[i] != nil || i >= len(calls) && errs[len(calls)] != nil {
			t.Fatalf("append %d: %v", i, errors.Join(errs...))
		}
		if results[i].Position.Commit != xid {
			t.Errorf("append %d committed in transaction %d, append 0 in %d: not one group", i, results[i].Position.Commit, xid)
		}
	}
	if results[5].Version != 2 || results[6].Version != 1 {
		t.Errorf("AppendMany results %+v, %+v", results[5], results[6])
	}
	for _, stream := range []string{"group-wrong", "group-foreign"} {
		if v, err := s.StreamVersion(ctx, stream); err != nil || v != 0 {
			t.Errorf("failed append to %s: version %d, %v", stream, v, err)
		}
	}
}

// A connection lost in the middle of an AppendMany's transaction (here:
// while it waits for a stream's lock) fails the call, transiently, and
// stores none of it; the same call retried stores it once.
func TestAppendManyConnectionLostStoresNothing(t *testing.T) {
	s := openStoreOpts(t, postgres.WithMaxConns(4))
	ctx := context.Background()
	commit := holdStream(t, s, "lost-held")
	call := []eventstore.StreamAppend{
		{Stream: "lost-a", Expected: eventstore.NoStream, Events: []eventstore.EventData{newEvent("A"), newEvent("A")}},
		{Stream: "lost-held", Expected: eventstore.Exact(1), Events: []eventstore.EventData{newEvent("A")}},
		{Stream: "lost-z", Expected: eventstore.NoStream, Events: []eventstore.EventData{newEvent("A")}},
	}
	type result struct {
		outs []eventstore.AppendOutcome
		err  error
	}
	done := make(chan result, 1)
	go func() {
		outs, err := s.AppendMany(ctx, call)
		done <- result{outs, err}
	}()
	pid := lockWaiter(t, s, "lost-held")
	var killed bool
	if err := s.Pool().QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate backend %d: %v, %v", pid, killed, err)
	}
	r := <-done
	if r.err == nil {
		t.Fatalf("call whose connection was terminated succeeded: %+v", r.outs)
	}
	if faults.Classify(r.err) != faults.Unavailable {
		t.Errorf("error %v classified %v, want Unavailable (transient)", r.err, faults.Classify(r.err))
	}
	for _, stream := range []string{"lost-a", "lost-z"} {
		if v, err := s.StreamVersion(ctx, stream); err != nil || v != 0 {
			t.Fatalf("after the failed call %s is at version %d (%v), want nothing stored", stream, v, err)
		}
	}
	commit()
	outs, err := s.AppendMany(ctx, call)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	for i, o := range outs {
		if o.Err != nil || o.Duplicate {
			t.Fatalf("retry, append %d: %+v, %v", i, o.AppendResult, o.Err)
		}
	}
	if outs[0].Position.Commit != outs[2].Position.Commit {
		t.Errorf("one call in transactions %d and %d", outs[0].Position.Commit, outs[2].Position.Commit)
	}
}

// Calls over the same streams in every order, from two stores (as two
// processes) with two lanes each, never deadlock: every transaction takes
// its streams' locks in one order.
func TestAppendManyLocksInOneOrder(t *testing.T) {
	url := migratedURL(t)
	stores := []*postgres.Store{
		openURL(t, url, postgres.WithMaxConns(3), postgres.WithAppendLanes(2)),
		openURL(t, url, postgres.WithMaxConns(3), postgres.WithAppendLanes(2)),
	}
	for _, s := range stores {
		postgres.StartLanesAt(s, 1) // the second lane runs whenever a call waits
	}
	streams := []string{"order-a", "order-b", "order-c", "order-d", "order-e", "order-f"}
	calls := 25
	if testing.Short() {
		calls = 8
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[w%2]
			for i := range calls {
				order := rand.Perm(len(streams))
				appends := make([]eventstore.StreamAppend, len(order))
				for j, k := range order {
					appends[j] = eventstore.StreamAppend{Stream: streams[k], Expected: eventstore.Any, Events: []eventstore.EventData{newEvent("O")}}
				}
				outs, err := s.AppendMany(ctx, appends)
				if err == nil {
					for _, o := range outs {
						err = errors.Join(err, o.Err)
					}
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d call %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, stream := range streams {
		if v, err := stores[0].StreamVersion(ctx, stream); err != nil || v != int64(8*calls) {
			t.Fatalf("%s at version %d (%v), want %d", stream, v, err, 8*calls)
		}
	}
	assertStreamsInGlobalOrder(t, stores[0])
}

// A full group that queues while a lane is busy commits beside it in a
// lane of its own: here the busy lane waits for a stream's lock that a
// transaction holds, and a large AppendMany of other streams (a batch of
// the processor's completions) must not wait for it.
func TestFullGroupCommitsBesideABusyLane(t *testing.T) {
	s := openStoreOpts(t, postgres.WithMaxConns(4))
	ctx := context.Background()
	call := func(prefix string, n int) []eventstore.StreamAppend {
		appends := make([]eventstore.StreamAppend, n)
		for i := range appends {
			appends[i] = eventstore.StreamAppend{Stream: fmt.Sprintf("%s-%d", prefix, i), Expected: eventstore.NoStream,
				Events: []eventstore.EventData{newEvent("Beside")}}
		}
		return appends
	}
	commit := holdStream(t, s, "beside-held")
	blocked := make(chan error, 1)
	go func() {
		appends := append(call("beside-blocked", 99), eventstore.StreamAppend{Stream: "beside-held", Expected: eventstore.Any,
			Events: []eventstore.EventData{newEvent("Beside")}})
		_, err := s.AppendMany(ctx, appends)
		blocked <- err
	}()
	lockWaiter(t, s, "beside-held")

	done := make(chan error, 2)
	for _, prefix := range []string{"beside-a", "beside-b"} { // 200 appends queued: a full group waits
		go func() {
			outs, err := s.AppendMany(ctx, call(prefix, 100))
			for _, o := range outs {
				err = errors.Join(err, o.Err)
			}
			done <- err
		}()
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no call committed while the first lane waited for a lock: the full group did not get a lane of its own")
	}
	select {
	case err := <-blocked:
		t.Fatalf("the call waiting for the held lock returned before it was released: %v", err)
	default:
	}
	commit()
	for _, ch := range []chan error{done, blocked} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a call did not commit after the lock was released")
		}
	}
	assertStreamsInGlobalOrder(t, s)
}

// A value PostgreSQL refuses (a time beyond timestamptz's range) that
// arrives in a group fails only its own call: the group is retried one
// call at a time. An AppendMany holding one fails as a whole, with
// ErrInvalid, storing nothing.
func TestGroupWithRefusedValue(t *testing.T) {
	s := openStoreOpts(t, postgres.WithMaxConns(4), postgres.WithAppendLanes(1))
	ctx := context.Background()
	far := newEvent("Far")
	far.Metadata.OccurredAt = time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)

	outs, err := s.AppendMany(ctx, []eventstore.StreamAppend{
		{Stream: "refused-ok", Expected: eventstore.NoStream, Events: []eventstore.EventData{newEvent("A")}},
		{Stream: "refused-far", Expected: eventstore.NoStream, Events: []eventstore.EventData{far}},
	})
	if !errors.Is(err, eventstore.ErrInvalid) {
		t.Fatalf("call with a refused value = %+v, %v; want ErrInvalid", outs, err)
	}
	if v, err := s.StreamVersion(ctx, "refused-ok"); err != nil || v != 0 {
		t.Fatalf("the refused call stored refused-ok at version %d (%v)", v, err)
	}

	commit := holdStream(t, s, "refused-held")
	blocked := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "refused-held", eventstore.Any, newEvent("Blocked"))
		blocked <- err
	}()
	lockWaiter(t, s, "refused-held")
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, e := range []eventstore.EventData{newEvent("A"), far, newEvent("A")} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Append(ctx, fmt.Sprintf("refused-%d", i), eventstore.NoStream, e)
		}()
		testenv.WaitFor(t, "the append to queue", func() bool { return postgres.QueuedAppends(s) == i+1 })
	}
	commit()
	wg.Wait()
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], eventstore.ErrInvalid) {
		t.Fatalf("appends grouped with a refused value: %v", errs)
	}
}

// A group that waits for one of its streams' locks while another
// transaction appends to a stream it locks later still puts its events of
// that stream after the other transaction's in the global order: its
// transaction got its ID at its first lock, before the other's, so it runs
// again in a new transaction (migration 0073) rather than commit version 2
// ahead of version 1.
func TestAppendManyKeepsEachStreamInGlobalOrder(t *testing.T) {
	s := openStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pool := s.Pool()
	// Three streams whose lock rows come in the order a, m, b.
	type stream struct {
		name string
		slot int
	}
	var ss []stream
	for i := range 3 {
		name := fmt.Sprintf("global-order-%d", i)
		var slot int
		if err := pool.QueryRow(ctx, `SELECT hashtext($1) & 65535`, name).Scan(&slot); err != nil {
			t.Fatal(err)
		}
		ss = append(ss, stream{name, slot})
	}
	slices.SortFunc(ss, func(x, y stream) int { return x.slot - y.slot })
	a, m, b := ss[0], ss[1], ss[2]

	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(ctx) }()
	if _, err := holder.Exec(ctx, `SELECT 1 FROM stream_locks WHERE slot = $1 FOR UPDATE`, m.slot); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		outs, err := s.AppendMany(ctx, []eventstore.StreamAppend{
			{Stream: a.name, Expected: eventstore.Any, Events: []eventstore.EventData{newEvent("Group")}},
			{Stream: m.name, Expected: eventstore.Any, Events: []eventstore.EventData{newEvent("Group")}},
			{Stream: b.name, Expected: eventstore.Any, Events: []eventstore.EventData{newEvent("Group")}},
		})
		for _, o := range outs {
			err = errors.Join(err, o.Err)
		}
		done <- err
	}()
	testenv.WaitFor(t, "the group to wait for m's lock", func() bool {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%stream_locks%ORDER BY slot FOR UPDATE%'`).Scan(&n)
		return err == nil && n > 0
	})
	// Meanwhile another transaction appends to b, which the group locks
	// after m, and commits.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendTx(ctx, tx, b.name, eventstore.Any, newEvent("Other")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	evs, err := s.ReadStream(ctx, b.name, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Type != "Other" || evs[1].Type != "Group" {
		t.Fatalf("stream b: %v", evs)
	}
	if !evs[0].Position.Less(evs[1].Position) {
		t.Fatalf("stream b: version 1 at %v, version 2 at %v: version 2 comes first in the global order", evs[0].Position, evs[1].Position)
	}
	assertStreamsInGlobalOrder(t, s)
}

// assertStreamsInGlobalOrder reads the whole log in global order and fails
// when a stream's versions do not ascend one by one along it.
func assertStreamsInGlobalOrder(t *testing.T, s *postgres.Store) {
	t.Helper()
	last := map[string]int64{}
	from := eventstore.Start
	for {
		evs, err := s.ReadAll(context.Background(), from, eventstore.Filter{}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return
		}
		for _, e := range evs {
			if e.Version != last[e.Stream]+1 {
				t.Fatalf("global order: %s version %d at %v follows version %d", e.Stream, e.Version, e.Position, last[e.Stream])
			}
			last[e.Stream] = e.Version
		}
		from = evs[len(evs)-1].Position
	}
}

// Full groups committing side by side in several lanes ride through a cut
// of the database: for a second refused (the proxy stopped) and for a
// second partitioned (connections held open), four writers keep sending
// calls of 100 appends and retry a failed one as it was (same events,
// same expected versions). The cut meets calls in flight; each failure is
// transient, each call is stored exactly once (a retry of a call that was
// committed finds it: Duplicate), and the store takes calls again by
// itself after the cut.
func TestLanesRideThroughADatabaseCut(t *testing.T) {
	for _, mode := range []string{"refused", "partitioned"} {
		t.Run(mode, func(t *testing.T) {
			url, proxy := testenv.ProxyPostgres(t, migratedURL(t))
			s := openURL(t, url, postgres.WithMaxConns(8))
			const writers, streams = 4, 100
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			var (
				wg       sync.WaitGroup
				stop     = make(chan struct{})
				done     [writers]atomic.Int64 // calls stored, per writer
				failures atomic.Int64
				longest  atomic.Int64 // the longest call, retries included, in ms
			)
			errs := make(chan error, writers)
			for w := range writers {
				wg.Go(func() {
					for k := int64(0); ; k++ {
						select {
						case <-stop:
							return
						default:
						}
						call := make([]eventstore.StreamAppend, streams)
						for i := range call {
							call[i] = eventstore.StreamAppend{Stream: fmt.Sprintf("cut-%s-%d-%d", mode, w, i),
								Expected: eventstore.Exact(k), Events: []eventstore.EventData{newEvent("Cut")}}
						}
						began := time.Now()
						for {
							cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
							outs, err := s.AppendMany(cctx, call)
							ccancel()
							if err == nil {
								for i, o := range outs {
									if o.Err != nil {
										errs <- fmt.Errorf("writer %d call %d append %d: %w", w, k, i, o.Err)
										return
									}
								}
								break
							}
							if c := faults.Classify(err); c != faults.Unavailable && !errors.Is(err, context.DeadlineExceeded) {
								errs <- fmt.Errorf("writer %d call %d: %v classified %v, want a transient failure", w, k, err, c)
								return
							}
							failures.Add(1)
							if ctx.Err() != nil {
								errs <- fmt.Errorf("writer %d call %d: still failing when the test ran out: %w", w, k, err)
								return
							}
							time.Sleep(50 * time.Millisecond)
						}
						if d := time.Since(began).Milliseconds(); d > longest.Load() {
							longest.Store(d)
						}
						done[w].Add(1)
					}
				})
			}
			stored := func(n int64) func() bool {
				return func() bool {
					for w := range writers {
						if done[w].Load() < n {
							return false
						}
					}
					return true
				}
			}
			testenv.WaitFor(t, "two calls of every writer", stored(2))
			before := [writers]int64{}
			for w := range writers {
				before[w] = done[w].Load()
			}
			if mode == "refused" {
				proxy.Stop()
				time.Sleep(time.Second)
				proxy.Start(t)
			} else {
				proxy.Partition()
				time.Sleep(time.Second)
				proxy.Heal()
			}
			testenv.WaitFor(t, "three more calls of every writer after the cut", func() bool {
				for w := range writers {
					if done[w].Load() < before[w]+3 {
						return false
					}
				}
				return true
			})
			close(stop)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if failures.Load() == 0 && longest.Load() < 900 {
				t.Fatalf("no call failed or waited through the cut (longest %d ms): the cut met nothing in flight", longest.Load())
			}
			for w := range writers {
				for i := range streams {
					stream := fmt.Sprintf("cut-%s-%d-%d", mode, w, i)
					if v, err := s.StreamVersion(ctx, stream); err != nil || v != done[w].Load() {
						t.Fatalf("%s at version %d (%v), want %d: a call lost or stored twice", stream, v, err, done[w].Load())
					}
				}
			}
			if n := postgres.QueuedAppends(s); n != 0 {
				t.Errorf("%d calls still queued", n)
			}
			t.Logf("%d failed attempts during the cut, each retried; the longest call took %d ms", failures.Load(), longest.Load())
		})
	}
}

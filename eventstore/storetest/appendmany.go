package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

func mustAppendMany(t testing.TB, s eventstore.Store, appends ...eventstore.StreamAppend) []eventstore.AppendOutcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), shortDeadline)
	defer cancel()
	outs, err := s.AppendMany(ctx, appends)
	if err != nil {
		t.Fatalf("append to %d streams: %v", len(appends), err)
	}
	if len(outs) != len(appends) {
		t.Fatalf("append to %d streams returned %d outcomes", len(appends), len(outs))
	}
	return outs
}

func sa(stream string, expected eventstore.ExpectedVersion, evs ...eventstore.EventData) eventstore.StreamAppend {
	return eventstore.StreamAppend{Stream: stream, Expected: expected, Events: evs}
}

// wantStored fails unless out succeeded with version, not as a duplicate,
// at the position the stream's last event was stored at.
func wantStored(t testing.TB, s eventstore.Store, what string, out eventstore.AppendOutcome, stream string, version int64) {
	t.Helper()
	if out.Err != nil {
		t.Fatalf("%s: %v, want it stored", what, out.Err)
	}
	if out.Version != version || out.Duplicate {
		t.Fatalf("%s: %+v, want version %d, not a duplicate", what, out.AppendResult, version)
	}
	stored := readStream(t, s, stream, version, 1)
	if len(stored) != 1 || stored[0].Position != out.Position {
		t.Fatalf("%s: position %v, but the stream's event %d is %s", what, out.Position, version, describe(stored))
	}
}

// testAppendManyOutcomes: each append of one call is judged alone, as
// Append would judge it; the failures store nothing, the others are
// stored.
func (s suite) testAppendManyOutcomes(t *testing.T) {
	st := s.store(t)
	mustAppend(t, st, "many-existing", eventstore.NoStream, events("A", 2)...)
	mustAppend(t, st, "many-exact", eventstore.NoStream, event("A", 0))
	foreign := event("A", 0)
	mustAppend(t, st, "many-home", eventstore.NoStream, foreign)
	noData := event("B", 0)
	noData.Data = nil

	calls := []eventstore.StreamAppend{
		sa("many-new", eventstore.NoStream, events("B", 2)...),
		sa("many-existing", eventstore.Exact(5), event("B", 0)),
		sa("many-exact", eventstore.Exact(1), events("B", 3)...),
		sa("many-foreign", eventstore.NoStream, event("B", 0), foreign),
		sa("many-any", eventstore.Any, event("B", 0)),
		sa("many-missing", eventstore.StreamExists, event("B", 0)),
		sa("many-no-events", eventstore.Any),
		sa("many-no-data", eventstore.Any, event("B", 0), noData),
		sa("many-home", eventstore.NoStream, event("B", 0)), // exists
		sa("", eventstore.Any, event("B", 0)),
	}
	outs := mustAppendMany(t, st, calls...)

	wantStored(t, st, "append to a new stream", outs[0], "many-new", 2)
	wantWrongVersion(t, outs[1].Err, "many-existing", eventstore.Exact(5), 2)
	wantStored(t, st, "append with the right exact version", outs[2], "many-exact", 4)
	wantInvalid(t, "append with an event ID stored in another stream", outs[3].Err)
	if errors.Is(outs[3].Err, eventstore.ErrWrongVersion) {
		t.Fatalf("a foreign event ID reported as a wrong version: %v", outs[3].Err)
	}
	wantStored(t, st, "append with Any", outs[4], "many-any", 1)
	wantWrongVersion(t, outs[5].Err, "many-missing", eventstore.StreamExists, 0)
	wantInvalid(t, "append of no events", outs[6].Err)
	wantInvalid(t, "append of an event without data", outs[7].Err)
	wantWrongVersion(t, outs[8].Err, "many-home", eventstore.NoStream, 1)
	wantInvalid(t, "append to an empty stream ID", outs[9].Err)

	for _, stream := range []string{"many-foreign", "many-missing", "many-no-events", "many-no-data"} {
		if got := readStream(t, st, stream, 1, 0); len(got) != 0 {
			t.Fatalf("a failed append stored %s", describe(got))
		}
	}
	for stream, n := range map[string]int{"many-existing": 2, "many-home": 1, "many-new": 2, "many-exact": 4, "many-any": 1} {
		if got := readStream(t, st, stream, 1, 0); len(got) != n {
			t.Fatalf("stream %s holds %s, want %d events", stream, describe(got), n)
		}
	}
	last := outs[0].Position
	for _, i := range []int{2, 4} {
		if last.Less(outs[i].Position) {
			last = outs[i].Position
		}
	}
	settle(t, st, last)
	all := readAll(t, st, eventstore.Start, eventstore.Filter{}, 0)
	checkLogOrder(t, "read all", all)
	if len(all) != 4+2+3+1 {
		t.Fatalf("log holds %s, want the 4 events appended before and the 6 stored by the call", describe(all))
	}
}

// testAppendManyIdempotentRetry: a call retried, whole or in part, stores
// nothing twice and returns the stored results as duplicates.
func (s suite) testAppendManyIdempotentRetry(t *testing.T) {
	st := s.store(t)
	mustAppend(t, st, "retry-b", eventstore.NoStream, event("A", 0))
	mustAppend(t, st, "retry-c", eventstore.NoStream, event("A", 0))
	call := []eventstore.StreamAppend{
		sa("retry-a", eventstore.NoStream, events("B", 2)...),
		sa("retry-b", eventstore.Exact(1), event("B", 0)),
		sa("retry-c", eventstore.Any, events("B", 2)...),
		sa("retry-d", eventstore.Exact(7), event("B", 0)), // fails every time
	}
	first := mustAppendMany(t, st, call...)
	wantWrongVersion(t, first[3].Err, "retry-d", eventstore.Exact(7), 0)
	check := func(what string, outs []eventstore.AppendOutcome) {
		t.Helper()
		for i := range 3 {
			o := outs[i]
			if o.Err != nil || !o.Duplicate || o.Version != first[i].Version || o.Position != first[i].Position {
				t.Fatalf("%s: append %d to %s = %+v, %v; want the first result %+v with Duplicate", what, i, call[i].Stream, o.AppendResult, o.Err, first[i].AppendResult)
			}
		}
		wantWrongVersion(t, outs[3].Err, "retry-d", eventstore.Exact(7), 0)
	}
	for i := range 3 {
		if first[i].Err != nil || first[i].Duplicate {
			t.Fatalf("first call: append %d to %s = %+v, %v", i, call[i].Stream, first[i].AppendResult, first[i].Err)
		}
	}
	check("retry", mustAppendMany(t, st, call...))

	// Still a retry after later events landed in the streams.
	mustAppend(t, st, "retry-a", eventstore.Exact(2), event("C", 0))
	mustAppend(t, st, "retry-b", eventstore.Exact(2), event("C", 0))
	mustAppend(t, st, "retry-c", eventstore.Any, event("C", 0))
	check("late retry", mustAppendMany(t, st, call...))

	// A retry in another shape: one append of the call alone, and the
	// call's first append beside a new one.
	if res := mustAppend(t, st, "retry-b", eventstore.Exact(1), call[1].Events...); !res.Duplicate || res.Position != first[1].Position {
		t.Fatalf("Append retrying one append of the call = %+v, want the call's result %+v with Duplicate", res, first[1].AppendResult)
	}
	mixed := mustAppendMany(t, st, call[0], sa("retry-e", eventstore.NoStream, event("D", 0)))
	if !mixed[0].Duplicate || mixed[0].Position != first[0].Position {
		t.Fatalf("retry beside a new append = %+v, %v; want the first result %+v with Duplicate", mixed[0].AppendResult, mixed[0].Err, first[0].AppendResult)
	}
	wantStored(t, st, "the new append beside a retry", mixed[1], "retry-e", 1)

	for stream, n := range map[string]int{"retry-a": 3, "retry-b": 3, "retry-c": 4, "retry-d": 0, "retry-e": 1} {
		got := readStream(t, st, stream, 1, 0)
		if len(got) != n {
			t.Fatalf("stream %s holds %s, want %d events", stream, describe(got), n)
		}
		checkLogOrder(t, stream, got)
	}
}

// testAppendManyAtomicPerStream: an append of a call that fails stores
// none of its events, even when only its last event is at fault.
func (s suite) testAppendManyAtomicPerStream(t *testing.T) {
	st := s.store(t)
	foreign := event("A", 0)
	mustAppend(t, st, "atomic-home", eventstore.NoStream, foreign)
	partlyStored := events("A", 2)
	mustAppend(t, st, "atomic-partial", eventstore.NoStream, partlyStored[0])
	outs := mustAppendMany(t, st,
		sa("atomic-ok-1", eventstore.NoStream, events("B", 3)...),
		sa("atomic-foreign-last", eventstore.NoStream, event("B", 0), event("B", 1), foreign),
		sa("atomic-partial", eventstore.Any, partlyStored...),
		sa("atomic-ok-2", eventstore.Any, events("B", 2)...),
	)
	wantStored(t, st, "first good append", outs[0], "atomic-ok-1", 3)
	wantInvalid(t, "an append whose last event's ID is stored in another stream", outs[1].Err)
	wantInvalid(t, "an append whose first event is stored and second is not", outs[2].Err)
	wantStored(t, st, "second good append", outs[3], "atomic-ok-2", 2)
	if got := readStream(t, st, "atomic-foreign-last", 1, 0); len(got) != 0 {
		t.Fatalf("the failed append stored %s", describe(got))
	}
	if got := readStream(t, st, "atomic-partial", 1, 0); len(got) != 1 || got[0].ID != partlyStored[0].ID {
		t.Fatalf("the failed append to atomic-partial left %s, want only the event stored before", describe(got))
	}
}

// testAppendManyInvalidCall: a call that is not one (a stream or an event
// ID in two of its appends, too many appends) fails as a whole and stores
// nothing; an empty call does nothing.
func (s suite) testAppendManyInvalidCall(t *testing.T) {
	st := s.store(t)
	ctx := testContext(t, shortDeadline)
	settle(t, st, mustAppend(t, st, "invalid-existing", eventstore.NoStream, event("A", 0)).Position)
	before := head(t, st)

	shared := event("A", 1)
	tooMany := make([]eventstore.StreamAppend, eventstore.MaxStreamsPerAppendMany+1)
	for i := range tooMany {
		tooMany[i] = sa(fmt.Sprintf("invalid-many-%d", i), eventstore.Any, event("A", i))
	}
	cases := []struct {
		name    string
		appends []eventstore.StreamAppend
	}{
		{"StreamTwice", []eventstore.StreamAppend{
			sa("invalid-ok", eventstore.Any, event("A", 0)),
			sa("invalid-twice", eventstore.Any, event("A", 1)),
			sa("invalid-twice", eventstore.Any, event("A", 2)),
		}},
		{"EventIDInTwoAppends", []eventstore.StreamAppend{
			sa("invalid-ok", eventstore.Any, event("A", 0)),
			sa("invalid-1", eventstore.Any, shared),
			sa("invalid-2", eventstore.Any, event("A", 2), shared),
		}},
		{"TooManyAppends", tooMany},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			outs, err := st.AppendMany(ctx, tc.appends)
			if err == nil {
				t.Fatalf("call succeeded with %d outcomes, want an error wrapping ErrInvalid", len(outs))
			}
			wantInvalid(t, "call "+tc.name, err)
		})
	}
	outs, err := st.AppendMany(ctx, nil)
	if err != nil || len(outs) != 0 {
		t.Fatalf("empty call = %d outcomes, %v; want none and no error", len(outs), err)
	}
	if got := head(t, st); got != before {
		t.Fatalf("head moved from %v to %v: an invalid call wrote something", before, got)
	}
	if all := readAll(t, st, eventstore.Start, eventstore.Filter{}, 0); len(all) != 1 {
		t.Fatalf("log holds %s after invalid calls, want only the first event", describe(all))
	}
}

// testAppendManyCancelled cancels calls at many moments: a call that
// succeeds stored everything its outcomes say; a call that fails may have
// been stored if its context ended during the commit, but all of it or
// none (a backend without multi-stream transactions: each append all or
// nothing). The retry of a failed call tells which: its outcomes are
// duplicates for what was stored, and it stores the rest, once. (The
// streams are not read right after a failed call: its transaction may
// still be committing.)
func (s suite) testAppendManyCancelled(t *testing.T) {
	st := s.store(t)
	attempts := 40
	if testing.Short() {
		attempts = 15
	}
	const streams, batchSize = 4, 3
	call := func(i int) []eventstore.StreamAppend {
		out := make([]eventstore.StreamAppend, streams)
		for j := range out {
			out[j] = sa(fmt.Sprintf("cancel-%d-%d", i, j), eventstore.NoStream, events("A", batchSize)...)
		}
		return out
	}
	start := time.Now()
	mustAppendMany(t, st, call(-1)...)
	typical := time.Since(start)
	var completed, failed, partial, unknown int
	for i := range attempts {
		appends := call(i)
		ctx, cancel := context.WithCancel(context.Background())
		timer := time.AfterFunc(typical*3/2*time.Duration(i)/time.Duration(attempts), cancel)
		if i == 0 {
			cancel()
		}
		outs, err := st.AppendMany(ctx, appends)
		timer.Stop()
		cancel()
		if errors.Is(err, eventstore.ErrInvalid) {
			t.Fatalf("attempt %d: cancelled call returned ErrInvalid: %v", i, err)
		}
		if err == nil {
			if len(outs) != streams {
				t.Fatalf("attempt %d: %d outcomes for %d appends", i, len(outs), streams)
			}
			for j, o := range outs {
				if o.Err != nil && s.h.AppendManyPerStream == "" {
					t.Fatalf("attempt %d: the call succeeded but append %d failed alone: %v", i, j, o.Err)
				}
			}
		} else {
			// The retry settles the call: what it finds stored comes
			// back as duplicates.
			outs = mustAppendMany(t, st, appends...)
		}
		stored := 0
		for j, a := range appends {
			o := outs[j]
			got := readStream(t, st, a.Stream, 1, 0)
			switch {
			case o.Err != nil && s.h.AppendManyPerStream != "" && err == nil:
				if len(got) != 0 && len(got) != batchSize {
					t.Fatalf("attempt %d: failed append %d left %d of %d events", i, j, len(got), batchSize)
				}
				continue
			case o.Err != nil:
				t.Fatalf("attempt %d: append %d = %v", i, j, o.Err)
			case o.Version != batchSize || len(got) != batchSize:
				t.Fatalf("attempt %d: append %d reported %+v, stream holds %s", i, j, o.AppendResult, describe(got))
			}
			for k, e := range got {
				if e.ID != a.Events[k].ID {
					t.Fatalf("attempt %d: %s event %d is %s, want %s", i, a.Stream, k, e.ID, a.Events[k].ID)
				}
			}
			if err == nil || o.Duplicate {
				stored++ // by the call itself
			}
		}
		switch {
		case err == nil:
			completed++
		case stored == streams:
			unknown++ // the context ended during the commit
		case stored == 0:
			failed++
		case s.h.AppendManyPerStream == "":
			t.Fatalf("attempt %d: the failed call (%v) had stored %d of its %d appends", i, err, stored, streams)
		default:
			partial++
		}
	}
	t.Logf("%d calls stored, %d stored nothing, %d stored all but failed (ended during the commit), %d stored in part (per-stream backend), out of %d (one call took %v)",
		completed, failed, unknown, partial, attempts, typical)
	outs := mustAppendMany(t, st, sa("cancel-after", eventstore.NoStream, events("A", 2)...))
	wantStored(t, st, "a call after the cancellations", outs[0], "cancel-after", 2)
}

// testAppendManyAfterClose: a closed store refuses the call.
func (s suite) testAppendManyAfterClose(t *testing.T) {
	st := s.store(t)
	if err := st.Close(); err != nil && !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("close: %v", err)
	}
	_, err := st.AppendMany(testContext(t, shortDeadline), []eventstore.StreamAppend{sa("closed-1", eventstore.Any, event("A", 0))})
	if !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("append many after close: %v, want ErrClosed", err)
	}
}

// testAppendManySeenWhole: readers of the global log see all of a call's
// appends or none of them, while calls commit concurrently.
func (s suite) testAppendManySeenWhole(t *testing.T) {
	if s.h.AppendManyPerStream != "" {
		t.Skip(s.h.AppendManyPerStream)
	}
	st := s.store(t)
	ctx := testContext(t, longDeadline)
	calls := 30
	if testing.Short() {
		calls = 10
	}
	const streams = 4
	owner := map[uuid.UUID]int{} // event ID -> call
	var (
		mu      sync.Mutex
		done    = make(chan struct{})
		reads   int
		failure error
	)
	go func() {
		defer close(done)
		for {
			page, err := st.ReadAll(ctx, eventstore.Start, eventstore.Filter{}, 100000)
			if err != nil {
				failure = err
				return
			}
			mu.Lock()
			seen := map[int]int{}
			for _, e := range page {
				seen[owner[e.ID]]++
			}
			finished := len(owner) == calls*streams*2
			mu.Unlock()
			reads++
			for call, n := range seen {
				if n != streams*2 {
					failure = fmt.Errorf("a read of the log holds %d of the %d events of call %d: %s", n, streams*2, call, describe(page))
					return
				}
			}
			if finished && len(page) == calls*streams*2 {
				return
			}
			if ctx.Err() != nil {
				failure = ctx.Err()
				return
			}
		}
	}()
	for i := range calls {
		appends := make([]eventstore.StreamAppend, streams)
		for j := range appends {
			appends[j] = sa(fmt.Sprintf("whole-%d", j), eventstore.Exact(int64(2*i)), events(fmt.Sprintf("C%d", i), 2)...)
		}
		mu.Lock()
		for _, a := range appends {
			for _, e := range a.Events {
				owner[e.ID] = i
			}
		}
		mu.Unlock()
		for j, o := range mustAppendMany(t, st, appends...) {
			if o.Err != nil {
				t.Fatalf("call %d, append %d: %v", i, j, o.Err)
			}
		}
	}
	<-done
	if failure != nil {
		t.Fatal(failure)
	}
	t.Logf("%d reads of the log while %d calls committed", reads, calls)
}

// testPagesEndAtAppendsOfOneCall: a page of ReadAll never ends inside one
// append of a call, and does not run on into the call's other appends.
func (s suite) testPagesEndAtAppendsOfOneCall(t *testing.T) {
	if s.h.PagesMayCutAppends != "" {
		t.Skip(s.h.PagesMayCutAppends)
	}
	st := s.store(t)
	mustAppend(t, st, "call-0", eventstore.Any, event("A", 0))
	outs := mustAppendMany(t, st,
		sa("call-a", eventstore.Any, events("B", 2)...),
		sa("call-b", eventstore.Any, events("B", 3)...),
		sa("call-c", eventstore.Any, event("B", 0)),
		sa("call-d", eventstore.Any, events("B", 2)...),
	)
	last := outs[0].Position
	for _, o := range outs {
		if o.Err != nil {
			t.Fatalf("append: %v", o.Err)
		}
		if last.Less(o.Position) {
			last = o.Position
		}
	}
	settle(t, st, last)
	all := readAll(t, st, eventstore.Start, eventstore.Filter{}, 0)
	if len(all) != 9 {
		t.Fatalf("read all: %s, want 9 events", describe(all))
	}
	ctx := testContext(t, shortDeadline)
	for from := -1; from < len(all)-1; from++ {
		after := eventstore.Start
		if from >= 0 {
			after = all[from].Position
		}
		for limit := 1; limit <= 3 && from+limit < len(all); limit++ {
			// The page goes up to the limit, then on to the end of the
			// append it cut (its stream's next events), no further.
			end := from + limit + 1
			for end < len(all) && all[end].Stream == all[end-1].Stream {
				end++
			}
			page, err := st.ReadAll(ctx, after, eventstore.Filter{}, limit)
			if err != nil {
				t.Fatal(err)
			}
			sameSequence(t, fmt.Sprintf("read all after event %d, limit %d", from, limit), page, all[from+1:end])
		}
	}
}

// testConcurrentMultiAppends: the proof of testConcurrentWriters with
// AppendMany calls among the writers: calls over a writer's own streams,
// streams all writers fight over (exact versions, retried on conflict)
// and streams appended with Any, concurrently with single Appends. Every
// stored event is delivered exactly once, in the one order ReadAll and a
// second subscriber also see.
func (s suite) testConcurrentMultiAppends(t *testing.T) {
	st := s.store(t)
	writers, callsEach := 6, 16
	if testing.Short() {
		callsEach = 6
	}
	ctx := testContext(t, longDeadline)
	sub := subscribe(t, st, eventstore.Start, eventstore.Filter{})
	sentinel := event("Sentinel", 0)
	delivered := make(chan subscriberResult, 1)
	go func() { delivered <- readUntil(ctx, sub, sentinel.ID) }()

	var (
		mu        sync.Mutex
		committed = map[uuid.UUID]string{}
		wg        sync.WaitGroup
		errs      = make(chan error, writers)
	)
	record := func(stream string, evs []eventstore.EventData) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range evs {
			committed[e.ID] = stream
		}
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := multiWriter(ctx, st, w, callsEach, record); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	mustAppend(t, st, "multi-end", eventstore.NoStream, sentinel)
	committed[sentinel.ID] = "multi-end"

	var res subscriberResult
	select {
	case res = <-delivered:
	case <-ctx.Done():
		t.Fatalf("subscriber did not see the sentinel before the deadline")
	}
	if res.err != nil {
		t.Fatalf("subscriber: %v after %d events", res.err, len(res.got))
	}
	checkDelivered(t, st, res.got, committed, sentinel.ID)
}

// multiWriter is one writer of testConcurrentMultiAppends. Even writers
// make AppendMany calls of three appends (own stream, exact version; the
// shared stream, exact version; a half-shared stream, Any), retrying a
// conflict on the shared stream alone; odd writers make the same appends
// one Append at a time.
func multiWriter(ctx context.Context, st eventstore.Store, w, calls int, record func(string, []eventstore.EventData)) error {
	own, half := fmt.Sprintf("multi-w%d", w), fmt.Sprintf("multi-half-%d", w%2)
	var ownVersion int64
	for i := range calls {
		typ := fmt.Sprintf("W%d", w)
		ownBatch, sharedBatch, halfBatch := events(typ, i%3+1), events(typ, 1), events(typ, i%2+1)
		if w%2 == 1 {
			res, err := st.Append(ctx, own, eventstore.Exact(ownVersion), ownBatch...)
			if err != nil {
				return fmt.Errorf("append to %s at %d: %w", own, ownVersion, err)
			}
			ownVersion = res.Version
			record(own, ownBatch)
			if err := appendWithRetry(ctx, st, "multi-shared", sharedBatch); err != nil {
				return err
			}
			record("multi-shared", sharedBatch)
			if _, err := st.Append(ctx, half, eventstore.Any, halfBatch...); err != nil {
				return fmt.Errorf("append to %s: %w", half, err)
			}
			record(half, halfBatch)
			continue
		}
		shared, err := st.StreamVersion(ctx, "multi-shared")
		if err != nil {
			return err
		}
		outs, err := st.AppendMany(ctx, []eventstore.StreamAppend{
			sa(own, eventstore.Exact(ownVersion), ownBatch...),
			sa("multi-shared", eventstore.Exact(shared), sharedBatch...),
			sa(half, eventstore.Any, halfBatch...),
		})
		if err != nil {
			return fmt.Errorf("writer %d call %d: %w", w, i, err)
		}
		if outs[0].Err != nil || outs[2].Err != nil {
			return fmt.Errorf("writer %d call %d: %v, %v", w, i, outs[0].Err, outs[2].Err)
		}
		ownVersion = outs[0].Version
		record(own, ownBatch)
		record(half, halfBatch)
		for outs[1].Err != nil {
			if !errors.Is(outs[1].Err, eventstore.ErrWrongVersion) {
				return fmt.Errorf("writer %d call %d, shared stream: %w", w, i, outs[1].Err)
			}
			if shared, err = st.StreamVersion(ctx, "multi-shared"); err != nil {
				return err
			}
			if outs, err = st.AppendMany(ctx, []eventstore.StreamAppend{sa("multi-shared", eventstore.Exact(shared), sharedBatch...)}); err != nil {
				return fmt.Errorf("writer %d call %d, shared stream again: %w", w, i, err)
			}
			outs = []eventstore.AppendOutcome{{}, outs[0]}
		}
		record("multi-shared", sharedBatch)
	}
	return nil
}

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

func (s suite) testCatchUpThenLive(t *testing.T) {
	st := s.store(t)
	stored := events("A", 3)
	mustAppend(t, st, "live-1", eventstore.NoStream, stored...)
	sub := subscribe(t, st, eventstore.Start, eventstore.Filter{})
	caught := collectN(t, sub, 3)
	if len(caught) != 3 {
		t.Fatalf("catch-up delivered %s, want the 3 stored events", describe(caught))
	}
	// The subscriber is now idle and waiting: these arrive live.
	live := events("B", 2)
	mustAppend(t, st, "live-2", eventstore.NoStream, live[0])
	mustAppend(t, st, "live-1", eventstore.Exact(3), live[1])
	got := append(caught, collectN(t, sub, 2)...)
	checkLogOrder(t, "catch-up then live", got)
	sameSequence(t, "subscription vs read all", got, readAll(t, st, eventstore.Start, eventstore.Filter{}, 0))
	if p := sub.Position(); p.Less(got[len(got)-1].Position) {
		t.Fatalf("subscription position %v is before the last delivered event %v", p, got[len(got)-1].Position)
	}
}

// testConcurrentWriters: many writers on many streams, a live subscriber
// started before them. Every committed event must be delivered exactly
// once, in the one order that ReadAll and a second subscriber also see.
func (s suite) testConcurrentWriters(t *testing.T) {
	st := s.store(t)
	writers, appendsEach := 8, 24
	if testing.Short() {
		appendsEach = 8
	}
	ctx := testContext(t, longDeadline)
	sub := subscribe(t, st, eventstore.Start, eventstore.Filter{})

	// The subscriber reads concurrently with the writers until it sees the
	// sentinel appended after they all finished.
	sentinel := event("Sentinel", 0)
	done := make(chan subscriberResult, 1)
	go func() { done <- readUntil(ctx, sub, sentinel.ID) }()

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
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := fmt.Sprintf("conc-w%d", w)
			var ownVersion int64
			for i := 0; i < appendsEach; i++ {
				batch := events(fmt.Sprintf("W%d", w), i%3+1)
				switch i % 4 {
				case 3: // a stream every writer fights over, with exact versions
					if err := appendWithRetry(ctx, st, "conc-shared", batch); err != nil {
						errs <- err
						return
					}
					record("conc-shared", batch)
				case 2: // a stream shared by half the writers, no condition
					stream := fmt.Sprintf("conc-half-%d", w%2)
					if _, err := st.Append(ctx, stream, eventstore.Any, batch...); err != nil {
						errs <- fmt.Errorf("append to %s: %w", stream, err)
						return
					}
					record(stream, batch)
				default:
					res, err := st.Append(ctx, own, eventstore.Exact(ownVersion), batch...)
					if err != nil {
						errs <- fmt.Errorf("append to %s at %d: %w", own, ownVersion, err)
						return
					}
					ownVersion = res.Version
					record(own, batch)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	mustAppend(t, st, "conc-end", eventstore.NoStream, sentinel)
	committed[sentinel.ID] = "conc-end"

	var res subscriberResult
	select {
	case res = <-done:
	case <-ctx.Done():
		t.Fatalf("subscriber did not see the sentinel before the deadline")
	}
	if res.err != nil {
		t.Fatalf("subscriber: %v after %d events", res.err, len(res.got))
	}
	checkDelivered(t, st, res.got, committed, sentinel.ID)
}

// subscriberResult is what a subscriber delivered until it stopped.
type subscriberResult struct {
	got []eventstore.RecordedEvent
	err error
}

// readUntil reads sub until it delivers the event with ID last.
func readUntil(ctx context.Context, sub eventstore.Subscription, last uuid.UUID) subscriberResult {
	var got []eventstore.RecordedEvent
	for {
		batch, err := sub.Next(ctx)
		if err != nil {
			return subscriberResult{got, err}
		}
		got = append(got, batch...)
		for _, e := range batch {
			if e.ID == last {
				return subscriberResult{got, nil}
			}
		}
	}
}

// checkDelivered fails unless got, what a live subscriber delivered up to
// the sentinel, is every committed event (ID -> stream) exactly once, in
// log order, each stream's versions gap-free, and the same sequence that
// ReadAll and a second subscriber from the start return.
func checkDelivered(t *testing.T, st eventstore.Store, got []eventstore.RecordedEvent, committed map[uuid.UUID]string, sentinel uuid.UUID) {
	t.Helper()
	checkLogOrder(t, "live subscriber", got)
	if len(got) != len(committed) {
		t.Fatalf("subscriber delivered %d events, %d were committed", len(got), len(committed))
	}
	for _, e := range got {
		stream, ok := committed[e.ID]
		if !ok || stream != e.Stream {
			t.Fatalf("subscriber delivered %s in %s, which was not committed there", e.ID, e.Stream)
		}
	}
	// Versions are ascending per stream (checkLogOrder) and, since every
	// event was delivered, gap-free: the last one equals the count.
	counts := map[string]int64{}
	for _, e := range got {
		counts[e.Stream]++
		if e.Version != counts[e.Stream] {
			t.Fatalf("stream %s: delivered version %d as its event number %d", e.Stream, e.Version, counts[e.Stream])
		}
	}
	sameSequence(t, "live subscriber vs read all afterwards", got, readAll(t, st, eventstore.Start, eventstore.Filter{}, 50))
	second := subscribe(t, st, eventstore.Start, eventstore.Filter{})
	sameSequence(t, "live subscriber vs a subscriber from the start", got, collectIDs(t, second, longDeadline, sentinel))
}

// appendWithRetry appends batch to stream at its current version, reading
// the version again after each conflict, as a command handler does.
func appendWithRetry(ctx context.Context, st eventstore.Store, stream string, batch []eventstore.EventData) error {
	for {
		v, err := st.StreamVersion(ctx, stream)
		if err != nil {
			return fmt.Errorf("read version of %s: %w", stream, err)
		}
		_, err = st.Append(ctx, stream, eventstore.Exact(v), batch...)
		if errors.Is(err, eventstore.ErrWrongVersion) {
			continue
		}
		if err != nil {
			return fmt.Errorf("append to %s at %d: %w", stream, v, err)
		}
		return nil
	}
}

func (s suite) holdAppend(t *testing.T, st eventstore.Store, stream string, evs ...eventstore.EventData) HeldAppend {
	t.Helper()
	if s.h.HoldAppend == nil {
		reason := s.h.HoldAppendSkipReason
		if reason == "" {
			reason = "the backend cannot hold an append open while later ones commit, so commits cannot come out of order"
		}
		t.Skip(reason)
	}
	held, err := s.h.HoldAppend(testContext(t, shortDeadline), t, st, stream, evs...)
	if err != nil {
		t.Fatalf("hold an append open: %v", err)
	}
	return held
}

// testOutOfOrderCommit: an append that took its place in the log first
// commits last. Nothing a reader saw before it committed may make it skip
// the held event: what was read before is a prefix of what is read after.
func (s suite) testOutOfOrderCommit(t *testing.T) {
	st := s.store(t)
	ctx := testContext(t, shortDeadline)
	sub := subscribe(t, st, eventstore.Start, eventstore.Filter{})
	first := event("First", 0)
	mustAppend(t, st, "ooo-first", eventstore.NoStream, first)
	delivered := collectIDs(t, sub, shortDeadline, first.ID)

	heldEvents := events("Held", 2)
	held := s.holdAppend(t, st, "ooo-held", heldEvents...)
	committedHeld := false
	t.Cleanup(func() {
		if !committedHeld {
			_ = held.Rollback(context.Background())
		}
	})
	later := []eventstore.EventData{event("Later", 1), event("Later", 2), event("Later", 3)}
	mustAppend(t, st, "ooo-later-1", eventstore.NoStream, later[0])
	mustAppend(t, st, "ooo-later-2", eventstore.NoStream, later[1:]...)

	// Readers before the held append commits. The window lets a subscriber
	// run ahead if it would; its length decides nothing.
	beforeHead := head(t, st)
	before := readAll(t, st, eventstore.Start, eventstore.Filter{}, 0)
	delivered = append(delivered, drainFor(t, sub, 500*time.Millisecond)...)

	if err := held.Commit(ctx); err != nil {
		t.Fatalf("commit the held append: %v", err)
	}
	committedHeld = true
	// A marker committed after everything else: once the subscriber
	// delivers it, it has delivered all it ever will before it.
	marker := event("Marker", 0)
	mustAppend(t, st, "ooo-marker", eventstore.NoStream, marker)
	delivered = append(delivered, collectIDs(t, sub, shortDeadline, marker.ID)...)
	want := append(append([]uuid.UUID{first.ID}, dataIDs(heldEvents)...), dataIDs(later)...)
	want = append(want, marker.ID)
	gotByID := map[uuid.UUID]int{}
	for _, e := range delivered {
		gotByID[e.ID]++
	}
	for _, id := range want {
		if gotByID[id] != 1 {
			t.Fatalf("subscriber delivered event %s %d times, want once: %s", id, gotByID[id], describe(delivered))
		}
	}

	after := readAll(t, st, eventstore.Start, eventstore.Filter{}, 0)
	checkLogOrder(t, "subscriber", delivered)
	checkLogOrder(t, "read all", after)
	sameSequence(t, "subscriber vs read all after the held commit", delivered, after)
	if len(after) != len(want) {
		t.Fatalf("log holds %s, want %d events", describe(after), len(want))
	}
	got := map[uuid.UUID]bool{}
	for _, e := range after {
		got[e.ID] = true
	}
	for _, id := range want {
		if !got[id] {
			t.Fatalf("event %s is missing from the log %s", id, describe(after))
		}
	}
	if len(before) > len(after) {
		t.Fatalf("read before the held commit %s is longer than after %s", describe(before), describe(after))
	}
	sameSequence(t, "read all before the held commit vs a prefix of the log after it", before, after[:len(before)])
	resumed := readAll(t, st, beforeHead, eventstore.Filter{}, 0)
	var wantResumed []eventstore.RecordedEvent
	for _, e := range after {
		if beforeHead.Less(e.Position) {
			wantResumed = append(wantResumed, e)
		}
	}
	sameSequence(t, "read all after the head taken before the held commit", resumed, wantResumed)
	for _, e := range after {
		if e.Stream == "ooo-held" && !beforeHead.Less(e.Position) {
			t.Fatalf("held event at %v is not after the head %v read before it committed: a reader checkpointing the head would skip it", e.Position, beforeHead)
		}
	}
}

// testOutOfOrderRollback: a held append that rolls back is never
// delivered, and does not stop readers from getting what followed it.
func (s suite) testOutOfOrderRollback(t *testing.T) {
	st := s.store(t)
	ctx := testContext(t, shortDeadline)
	sub := subscribe(t, st, eventstore.Start, eventstore.Filter{})
	heldEvents := events("Held", 1)
	held := s.holdAppend(t, st, "oor-held", heldEvents...)
	later := events("Later", 2)
	mustAppend(t, st, "oor-later", eventstore.NoStream, later...)
	delivered := drainFor(t, sub, 300*time.Millisecond)
	if err := held.Rollback(ctx); err != nil {
		t.Fatalf("roll back the held append: %v", err)
	}
	marker := event("Marker", 0)
	mustAppend(t, st, "oor-marker", eventstore.NoStream, marker)
	delivered = append(delivered, collectIDs(t, sub, shortDeadline, marker.ID)...)
	checkLogOrder(t, "subscriber", delivered)
	sameSequence(t, "subscriber vs read all", delivered, readAll(t, st, eventstore.Start, eventstore.Filter{}, 0))
	for _, e := range delivered {
		if e.ID == heldEvents[0].ID {
			t.Fatalf("a rolled-back event was delivered: %s", describe(delivered))
		}
	}
	if len(delivered) != 3 {
		t.Fatalf("delivered %s, want the 2 later events and the marker", describe(delivered))
	}
	// The rolled-back ID was never stored, so it may be appended now.
	mustAppend(t, st, "oor-held", eventstore.NoStream, heldEvents...)
}

// testResume stops a subscriber mid-stream while a writer keeps appending,
// then resumes from its checkpoints: no gap, no duplicate.
func (s suite) testResume(t *testing.T) {
	st := s.store(t)
	ctx := testContext(t, longDeadline)
	const (
		total       = 60
		beforeClose = 50 // appended while the first subscriber reads
	)
	appended := make([]eventstore.EventData, total)
	for i := range appended {
		appended[i] = event("Tick", i)
	}
	mustAppend(t, st, "resume-1", eventstore.NoStream, appended[:5]...)
	writerDone := make(chan error, 1)
	go func() {
		for i := 5; i < beforeClose; i++ {
			stream := fmt.Sprintf("resume-%d", i%3)
			if _, err := st.Append(ctx, stream, eventstore.Any, appended[i]); err != nil {
				writerDone <- err
				return
			}
		}
		writerDone <- nil
	}()

	first := subscribe(t, st, eventstore.Start, eventstore.Filter{})
	part1 := collectN(t, first, 5)
	lastDelivered := part1[len(part1)-1].Position
	scanned := first.Position()
	if scanned.Less(lastDelivered) {
		t.Fatalf("subscription position %v is before its last delivered event %v", scanned, lastDelivered)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("close the first subscription: %v", err)
	}
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}
	// Events that surely come after the stop.
	var last eventstore.AppendResult
	for i := beforeClose; i < total; i++ {
		last = mustAppend(t, st, fmt.Sprintf("resume-%d", i%3), eventstore.Any, appended[i])
	}
	settle(t, st, last.Position)
	all := readAll(t, st, eventstore.Start, eventstore.Filter{}, 0)
	if len(all) != total {
		t.Fatalf("log holds %d events, want %d", len(all), total)
	}
	if len(part1) >= total {
		t.Fatalf("the first subscriber delivered %d events before it was stopped, more than were appended then", len(part1))
	}

	for _, cp := range []struct {
		name string
		pos  eventstore.Position
	}{{"LastDeliveredPosition", lastDelivered}, {"SubscriptionPosition", scanned}} {
		t.Run(cp.name, func(t *testing.T) {
			var upTo []eventstore.RecordedEvent
			for _, e := range all {
				if !cp.pos.Less(e.Position) {
					upTo = append(upTo, e)
				}
			}
			// With no filter, everything at or below the checkpoint was delivered.
			sameSequence(t, "delivered before the stop vs the log up to the checkpoint", part1, upTo)
			resumed := subscribe(t, st, cp.pos, eventstore.Filter{})
			part2 := collectN(t, resumed, total-len(part1))
			sameSequence(t, "delivered before and after the resume vs read all", append(append([]eventstore.RecordedEvent{}, part1...), part2...), all)
		})
	}
}

func (s suite) testSubscribeFilters(t *testing.T) {
	st := s.store(t)
	streams := []string{"queue-alice", "queue-alicia", "queue-bob", "player-alice"}
	types := []string{"TaskEnqueued", "TaskCompleted"}
	filters := []eventstore.Filter{
		{EventTypes: []string{"TaskCompleted"}},
		{StreamPrefixes: []string{"queue-"}},
		{StreamPrefixes: []string{"queue-ali", "player-"}},
		{Streams: []string{"queue-alice"}},
		{Streams: []string{"queue-alice", "queue-bob"}, EventTypes: []string{"TaskEnqueued"}},
	}
	// Half the events are stored before subscribing (catch-up), half after (live).
	appendRound := func(round int) {
		for i, stream := range streams {
			for j, typ := range types {
				mustAppend(t, st, stream, eventstore.Any, event(typ, round*100+i*10+j))
			}
		}
	}
	appendRound(0)
	subs := make([]eventstore.Subscription, len(filters))
	for i, f := range filters {
		subs[i] = subscribe(t, st, eventstore.Start, f)
	}
	appendRound(1)
	marker := event("Marker", 0)
	settle(t, st, mustAppend(t, st, "marker", eventstore.NoStream, marker).Position)
	all := readAll(t, st, eventstore.Start, eventstore.Filter{}, 0)
	for i, f := range filters {
		var want []eventstore.RecordedEvent
		for _, e := range all {
			if f.Match(e.Stream, e.Type) {
				want = append(want, e)
			}
		}
		got := collectN(t, subs[i], len(want))
		sameSequence(t, fmt.Sprintf("subscription filtered by %+v", f), got, want)
		sameSequence(t, fmt.Sprintf("read all filtered by %+v", f), readAll(t, st, eventstore.Start, f, 3), want)
	}
}

// testPositionPastFiltered: a subscriber whose filter matches nothing
// still advances Position past the events it scanned, so a checkpoint of
// it does not rescan them.
func (s suite) testPositionPastFiltered(t *testing.T) {
	st := s.store(t)
	sub := subscribe(t, st, eventstore.Start, eventstore.Filter{EventTypes: []string{"Wanted"}})
	mustAppend(t, st, "filtered-1", eventstore.NoStream, event("Wanted", 0))
	got := collectN(t, sub, 1)
	last := mustAppend(t, st, "filtered-1", eventstore.Exact(1), events("Unwanted", 5)...).Position
	if !got[0].Position.Less(last) {
		t.Fatalf("head %v is not after the delivered event %v", last, got[0].Position)
	}
	// Next delivers nothing (only unwanted events follow) but scans them:
	// keep calling it with short waits until Position passes them.
	deadline := time.Now().Add(shortDeadline)
	wait := 100 * time.Millisecond
	for sub.Position().Less(last) {
		if time.Now().After(deadline) {
			t.Fatalf("subscription position %v never reached %v past the filtered-out events", sub.Position(), last)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		wait = min(2*wait, 2*time.Second) // a slow machine gets longer scans
		batch, err := sub.Next(ctx)
		cancel()
		if err == nil {
			t.Fatalf("filter delivered unwanted events %s", describe(batch))
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("next: %v, want the context's deadline", err)
		}
	}
	// The subscription is still usable after those cancelled Next calls.
	wanted := event("Wanted", 1)
	mustAppend(t, st, "filtered-2", eventstore.NoStream, wanted)
	if next := collectN(t, sub, 1); next[0].ID != wanted.ID {
		t.Fatalf("after cancelled Next calls, delivered %s, want %s", describe(next), wanted.ID)
	}
	resumed := subscribe(t, st, last, eventstore.Filter{EventTypes: []string{"Wanted"}})
	if next := collectN(t, resumed, 1); len(next) != 1 || next[0].ID != wanted.ID {
		t.Fatalf("resumed from the scanned position, delivered %s, want only %s", describe(next), wanted.ID)
	}
}

func (s suite) testSubscribeCancel(t *testing.T) {
	st := s.store(t)
	sub := subscribe(t, st, eventstore.Start, eventstore.Filter{})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if batch, err := sub.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("next with a cancelled context = %s, %v; want context.Canceled", describe(batch), err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := sub.Next(ctx)
		errc <- err
	}()
	time.AfterFunc(50*time.Millisecond, cancel)
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("blocked next after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(shortDeadline):
		t.Fatal("blocked next did not return after its context was cancelled")
	}

	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := sub.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("next past its deadline: %v, want context.DeadlineExceeded", err)
	}

	// The subscription still works.
	e := event("A", 0)
	mustAppend(t, st, "cancel-sub", eventstore.NoStream, e)
	if got := collectN(t, sub, 1); got[0].ID != e.ID {
		t.Fatalf("after cancelled Next calls, delivered %s, want %s", describe(got), e.ID)
	}
}

func (s suite) testClose(t *testing.T) {
	t.Run("Subscription", func(t *testing.T) {
		st := s.store(t)
		sub := subscribe(t, st, eventstore.Start, eventstore.Filter{})
		ctx := testContext(t, shortDeadline)
		errc := make(chan error, 1)
		go func() {
			_, err := sub.Next(ctx)
			errc <- err
		}()
		time.AfterFunc(50*time.Millisecond, func() { _ = sub.Close() })
		if err := <-errc; !errors.Is(err, eventstore.ErrClosed) {
			t.Fatalf("next blocked while the subscription closed: %v, want ErrClosed", err)
		}
		if _, err := sub.Next(ctx); !errors.Is(err, eventstore.ErrClosed) {
			t.Fatalf("next on a closed subscription: %v, want ErrClosed", err)
		}
		// The store is unaffected.
		mustAppend(t, st, "close-1", eventstore.NoStream, event("A", 0))
		other := subscribe(t, st, eventstore.Start, eventstore.Filter{})
		collectN(t, other, 1)
	})
	t.Run("Store", func(t *testing.T) {
		st := s.store(t)
		mustAppend(t, st, "close-1", eventstore.NoStream, event("A", 0))
		sub := subscribe(t, st, eventstore.Start, eventstore.Filter{})
		collectN(t, sub, 1)
		ctx := testContext(t, shortDeadline)
		errc := make(chan error, 1)
		go func() {
			_, err := sub.Next(ctx)
			errc <- err
		}()
		time.AfterFunc(50*time.Millisecond, func() { _ = st.Close() })
		if err := <-errc; !errors.Is(err, eventstore.ErrClosed) {
			t.Fatalf("next blocked while the store closed: %v, want ErrClosed", err)
		}
		if err := st.Close(); err != nil && !errors.Is(err, eventstore.ErrClosed) {
			t.Fatalf("second close: %v", err)
		}
		if _, err := st.Append(ctx, "close-1", eventstore.Any, event("A", 1)); !errors.Is(err, eventstore.ErrClosed) {
			t.Fatalf("append after close: %v, want ErrClosed", err)
		}
		if _, err := st.Subscribe(ctx, eventstore.Start, eventstore.Filter{}); !errors.Is(err, eventstore.ErrClosed) {
			t.Fatalf("subscribe after close: %v, want ErrClosed", err)
		}
	})
}

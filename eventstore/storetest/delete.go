package storetest

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

// testDeleteStream: a deleted stream reads as never written, the global log
// keeps its head and every other event at its position, every reader
// (ReadAll with and without filters and paging, a catch-up subscriber, a
// live subscriber, a resume from a position inside the deleted events)
// skips the deleted events, and the stream starts again at version 1 after
// the head.
func (s suite) testDeleteStream(t *testing.T) {
	st := s.store(t)
	ctx := testContext(t, longDeadline)
	gone, kept := "del-gone-"+uuid.NewString(), "del-kept-"+uuid.NewString()
	mustAppend(t, st, gone, eventstore.NoStream, events("Gone", 2)...)
	k1 := mustAppend(t, st, kept, eventstore.NoStream, event("Kept", 1))
	mid := mustAppend(t, st, gone, eventstore.Exact(2), event("Gone", 3))
	mustAppend(t, st, kept, eventstore.Exact(1), event("Kept", 2))
	last := mustAppend(t, st, gone, eventstore.Exact(3), event("Gone", 4))
	settle(t, st, last.Position)
	keptEvents := readStream(t, st, kept, 1, 0)
	live := subscribe(t, st, last.Position, eventstore.Filter{})
	if snaps, ok := st.(eventstore.SnapshotStore); ok {
		evs := readStream(t, st, gone, 4, 1)
		if err := snaps.SaveSnapshot(ctx, gone, eventstore.Snapshot{Version: 4, EventID: evs[0].ID, Schema: 1, Data: []byte("state")}); err != nil {
			t.Fatalf("save snapshot: %v", err)
		}
	}
	headBefore := head(t, st)

	res, err := st.DeleteStream(ctx, gone)
	if err != nil || res.Events != 4 || res.Last != last.Position {
		t.Fatalf("delete stream: %+v, %v; want 4 events erased, the last at %v", res, err, last.Position)
	}
	if evs := readStream(t, st, gone, 0, 0); len(evs) != 0 {
		t.Fatalf("deleted stream reads %s", describe(evs))
	}
	if v := streamVersion(t, st, gone); v != 0 {
		t.Fatalf("deleted stream has version %d, want 0", v)
	}
	if h := head(t, st); h != headBefore {
		t.Fatalf("head moved from %v to %v on a deletion", headBefore, h)
	}
	if snaps, ok := st.(eventstore.SnapshotStore); ok {
		if snap, found, err := snaps.ReadSnapshot(ctx, gone); err != nil || found {
			t.Fatalf("deleted stream's snapshot: %+v, found %v, %v", snap, found, err)
		}
	}
	for _, limit := range []int{0, 1} {
		sameSequence(t, "read all after the deletion", readAll(t, st, eventstore.Start, eventstore.Filter{}, limit), keptEvents)
	}
	if evs := readAll(t, st, eventstore.Start, eventstore.Filter{StreamPrefixes: []string{"del-gone-", "$"}}, 0); len(evs) != 0 {
		t.Fatalf("read all of the deleted stream's prefix: %s", describe(evs))
	}
	if evs := readAll(t, st, eventstore.Start, eventstore.Filter{EventTypes: []string{"Gone", eventstore.DeletedType}}, 0); len(evs) != 0 {
		t.Fatalf("read all of the deleted events' types: %s", describe(evs))
	}
	// A reader that had checkpointed a position inside the deleted events
	// resumes from it.
	sameSequence(t, "read all from inside the deleted events", readAll(t, st, mid.Position, eventstore.Filter{}, 0), keptEvents[1:])
	if !k1.Position.Less(mid.Position) {
		t.Fatalf("positions: kept@1 %v is not before gone@3 %v", k1.Position, mid.Position)
	}
	catchUp := subscribe(t, st, eventstore.Start, eventstore.Filter{})
	sameSequence(t, "catch-up after the deletion", collectN(t, catchUp, len(keptEvents)), keptEvents)

	// The stream starts again, after the head.
	again := mustAppend(t, st, gone, eventstore.NoStream, event("Again", 1))
	if again.Version != 1 || !headBefore.Less(again.Position) {
		t.Fatalf("append after the deletion: version %d at %v, want version 1 after %v", again.Version, again.Position, headBefore)
	}
	settle(t, st, again.Position)
	got := collectN(t, catchUp, 1)
	if len(got) != 1 || got[0].Type != "Again" || got[0].Version != 1 {
		t.Fatalf("catch-up subscriber after the deletion got %s, want the new stream's first event", describe(got))
	}
	got = collectN(t, live, 1)
	if len(got) != 1 || got[0].Type != "Again" {
		t.Fatalf("live subscriber across the deletion got %s, want only the new stream's first event", describe(got))
	}
	if catchUp.Position().Less(again.Position) {
		t.Fatalf("subscription position %v is before the last event %v", catchUp.Position(), again.Position)
	}

	// Deleting nothing, and bad input.
	if res, err := st.DeleteStream(ctx, "del-none-"+uuid.NewString()); err != nil || res.Events != 0 {
		t.Fatalf("delete a stream that does not exist: %+v, %v", res, err)
	}
	for _, bad := range []string{"", eventstore.DeletedStreamPrefix + uuid.NewString()} {
		_, err := st.DeleteStream(ctx, bad)
		wantInvalid(t, "delete stream "+bad, err)
	}
	tomb := event(eventstore.DeletedType, 1)
	_, err = st.Append(context.Background(), kept, eventstore.Any, tomb)
	wantInvalid(t, "append an event of the tombstones' type", err)
	_, err = st.Append(context.Background(), eventstore.DeletedStreamPrefix+uuid.NewString(), eventstore.Any, event("X", 1))
	wantInvalid(t, "append to a tombstone stream", err)
}

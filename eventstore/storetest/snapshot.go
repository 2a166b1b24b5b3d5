package storetest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

// testSnapshots: a store that keeps snapshots returns what was saved byte
// for byte, keeps the newest of one schema, lets another schema replace
// it, refuses an invalid one, and stores none of an event the stream does
// not hold.
func (s suite) testSnapshots(t *testing.T) {
	st := s.store(t)
	snaps, ok := st.(eventstore.SnapshotStore)
	if !ok {
		t.Skip("this store keeps no snapshots (it does not implement eventstore.SnapshotStore)")
	}
	ctx := testContext(t, shortDeadline)
	stream := "snap-" + uuid.NewString()
	if _, found, err := snaps.ReadSnapshot(ctx, stream); err != nil || found {
		t.Fatalf("snapshot of a stream without one: found %v, %v", found, err)
	}
	mustAppend(t, st, stream, eventstore.NoStream, events("Snapped", 300)...)
	stored := readStream(t, st, stream, 1, 0)
	at := func(v int64, schema int, data string) eventstore.Snapshot {
		id := uuid.New()
		if v >= 1 && v <= int64(len(stored)) {
			id = stored[v-1].ID
		}
		return eventstore.Snapshot{Version: v, EventID: id, Schema: schema, Data: []byte(data)}
	}
	expect := func(want eventstore.Snapshot) {
		t.Helper()
		got, found, err := snaps.ReadSnapshot(ctx, stream)
		if err != nil || !found {
			t.Fatalf("read snapshot: found %v, %v", found, err)
		}
		if got.Version != want.Version || got.EventID != want.EventID || got.Schema != want.Schema || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("snapshot = %+v, want %+v", got, want)
		}
	}
	save := func(snap eventstore.Snapshot) {
		t.Helper()
		if err := snaps.SaveSnapshot(ctx, stream, snap); err != nil {
			t.Fatalf("save snapshot %+v: %v", snap, err)
		}
	}
	v200 := at(200, 1, "{\"state\":\"\x00\xffbinary-safe\"}")
	save(v200)
	expect(v200)
	save(at(100, 1, "older")) // a slower saver of an older state
	expect(v200)
	v300 := at(300, 1, "newer")
	save(v300)
	expect(v300)
	v50 := at(50, 2, "another schema") // the aggregate changed: its first snapshot replaces the old shape
	save(v50)
	expect(v50)
	if other, found, err := snaps.ReadSnapshot(ctx, "snap-"+uuid.NewString()); err != nil || found {
		t.Fatalf("another stream sees a snapshot: %+v, %v", other, err)
	}
	for _, bad := range []eventstore.Snapshot{at(0, 1, "x"), {Version: 5, Schema: 1, Data: []byte("x")}, at(5, 1, "")} {
		if err := snaps.SaveSnapshot(ctx, stream, bad); !errors.Is(err, eventstore.ErrInvalid) {
			t.Errorf("save %+v: %v, want ErrInvalid", bad, err)
		}
	}
	if err := snaps.SaveSnapshot(ctx, "", v300); !errors.Is(err, eventstore.ErrInvalid) {
		t.Errorf("save to an empty stream ID: %v, want ErrInvalid", err)
	}
	expect(v50)

	// A snapshot of an event the stream does not hold (taken before the
	// stream was deleted, finished after) is not stored.
	fresh := "snap-" + uuid.NewString()
	if err := snaps.SaveSnapshot(ctx, fresh, at(400, 1, "of no event")); err != nil {
		t.Fatalf("save a snapshot of no event: %v", err)
	}
	if got, found, err := snaps.ReadSnapshot(ctx, fresh); err != nil || found {
		t.Fatalf("a snapshot of an event the stream does not hold was stored: %+v, %v", got, err)
	}
}

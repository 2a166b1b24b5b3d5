package command

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// codecState is a queue with keys of both kinds (with and without the
// task they queued).
func codecState(t *testing.T) *loaded {
	t.Helper()
	st := &loaded{queue: domain.NewQueue("alice", domain.Rules{Catalog: domain.DefaultCatalog(), QueueLimit: 10}),
		version: 7, last: uuid.New(), keys: map[string]*keyRecord{}}
	for i, key := range []string{"k-1", "", "a key with spaces ~!"} {
		rec := &keyRecord{firstID: uuid.New(), version: int64(3 + i), position: eventstore.Position{Commit: uint64(1 << (40 + i)), Seq: uint64(900 + i)}}
		if i != 1 {
			rec.enqueued = &domain.TaskEnqueued{TaskID: domain.TaskID(uuid.NewString()), Type: "chop-wood", Count: 10 + i, Position: i - 1,
				EnqueuedAt: time.UnixMilli(1_780_000_000_123 + int64(i)).UTC()}
		}
		st.keys[key] = rec
		st.order = append(st.order, key)
	}
	return st
}

// The keys come back as they were, in order.
func TestSnapshotCodecRoundTrip(t *testing.T) {
	st := codecState(t)
	snap, err := encodeSnapshot(st)
	if err != nil {
		t.Fatal(err)
	}
	got := &loaded{}
	q, err := decodeSnapshot(snap.Data, got)
	if err != nil {
		t.Fatal(err)
	}
	gotQ, _ := json.Marshal(q)
	wantQ, _ := json.Marshal(st.queue.Snapshot())
	if string(gotQ) != string(wantQ) {
		t.Fatalf("queue: got %s, want %s", gotQ, wantQ)
	}
	if !reflect.DeepEqual(got.order, st.order) || !reflect.DeepEqual(got.keys, st.keys) {
		t.Fatalf("keys: got %v %+v, want %v %+v", got.order, got.keys, st.order, st.keys)
	}
}

// Data cut short anywhere or with bytes after it is refused, never a panic
// or a half-read state taken for a whole one.
func TestSnapshotCodecRefusesDamagedData(t *testing.T) {
	snap, err := encodeSnapshot(codecState(t))
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(snap.Data) {
		if _, err := decodeSnapshot(snap.Data[:n], &loaded{}); !errors.Is(err, errSnapshotData) {
			t.Fatalf("cut to %d of %d bytes: err %v, want errSnapshotData", n, len(snap.Data), err)
		}
	}
	if _, err := decodeSnapshot(append(snap.Data, 0), &loaded{}); !errors.Is(err, errSnapshotData) {
		t.Fatalf("a byte after the end: err %v, want errSnapshotData", err)
	}
	huge := appendBytes(nil, []byte(`{"player":"alice"}`))
	huge = append(huge, 0xff, 0xff, 0xff, 0xff, 0x0f) // 4 billion keys
	if _, err := decodeSnapshot(huge, &loaded{}); !errors.Is(err, errSnapshotData) {
		t.Fatalf("a key count past the data: err %v", err)
	}
}

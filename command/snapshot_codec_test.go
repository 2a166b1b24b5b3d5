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
	rules := domain.Rules{Catalog: domain.DefaultCatalog(), QueueLimit: 10}
	q := domain.NewQueue("alice", rules)
	now := time.Date(2026, 1, 2, 3, 4, 5, 123_000_000, time.UTC)
	step := func(_ []domain.Event, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Every part of the state but a stop (the workload of
	// TestSnapshotLoadEqualsTheFold has those): tasks, XP and inventory, a
	// repetition that consumes (saw-planks).
	step(q.Enqueue("a", "chop-wood", 3, nil, now))
	step(q.Enqueue("b", "chop-wood", 2, nil, now))
	step(q.Advance(now.Add(time.Hour)))
	step(q.Stop("lunch break", now.Add(2*time.Hour)))
	step(q.Start(now.Add(3 * time.Hour)))
	step(q.Enqueue("f", "saw-planks", 4, nil, now.Add(3*time.Hour)))
	step(q.Enqueue("g", "chop-wood", 2, nil, now.Add(3*time.Hour)))
	st := &loaded{queue: q, version: q.Version(), last: uuid.New(), keys: map[string]*keyRecord{}}
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
	if snap.Schema != snapshotSchema {
		t.Fatalf("schema %d, want %d", snap.Schema, snapshotSchema)
	}
	want := st.queue.Snapshot()
	if want.Repetition == nil || len(want.Repetition.Consumed) == 0 || len(want.XP) == 0 || len(want.Inventory) == 0 ||
		len(want.Tasks) < 2 {
		t.Fatalf("the state does not exercise every field: %+v", want)
	}
	for name, c := range map[string]struct {
		data   []byte
		schema int
	}{
		"binary": {snap.Data, snapshotKeysSchema},
		// A snapshot of schema 2 (the queue as JSON) loads still.
		"schema 2": {legacyData(t, st.queue.Snapshot(), snap.Data), snapshotKeysSchemaJSONQueue},
	} {
		got := &loaded{}
		q, err := decodeSnapshot(c.data, c.schema, got)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		gotQ, _ := json.Marshal(q)
		wantQ, _ := json.Marshal(want)
		if string(gotQ) != string(wantQ) {
			t.Fatalf("%s: queue: got %s, want %s", name, gotQ, wantQ)
		}
		restored, err := domain.RestoreQueue(q, domain.Rules{Catalog: domain.DefaultCatalog(), QueueLimit: 10})
		if err != nil || !restored.Equal(st.queue) {
			t.Fatalf("%s: the restored queue differs (%v)", name, err)
		}
		if !reflect.DeepEqual(got.order, st.order) || !reflect.DeepEqual(got.keys, st.keys) {
			t.Fatalf("%s: keys: got %v %+v, want %v %+v", name, got.order, got.keys, st.order, st.keys)
		}
	}
	// The same state, the same bytes (maps in key order).
	again, _ := encodeSnapshot(st)
	if !reflect.DeepEqual(again.Data, snap.Data) {
		t.Fatal("two encodings of one state differ")
	}
}

// legacyData is data (of this schema) with its queue as JSON: schema 2.
func legacyData(t *testing.T, q domain.QueueSnapshot, data []byte) []byte {
	t.Helper()
	js, err := json.Marshal(q)
	if err != nil {
		t.Fatal(err)
	}
	return append(appendBytes(nil, js), data[len(appendQueue(nil, q)):]...)
}

// The binary form writes every field of domain.QueueSnapshot: one added
// there fails this until appendQueue and decoder.queue write and read it
// (and snapshotKeysSchema is raised).
func TestSnapshotCodecKnowsEveryField(t *testing.T) {
	for typ, n := range map[reflect.Type]int{
		reflect.TypeFor[domain.QueueSnapshot]():  9,
		reflect.TypeFor[domain.SnapshotTask]():   5,
		reflect.TypeFor[domain.SnapshotRepeat](): 10,
	} {
		if typ.NumField() != n {
			t.Errorf("%s has %d fields; the binary snapshot codec knows %d", typ, typ.NumField(), n)
		}
	}
}

// Data cut short anywhere or with bytes after it is refused, never a panic
// or a half-read state taken for a whole one.
func TestSnapshotCodecRefusesDamagedData(t *testing.T) {
	st := codecState(t)
	snap, err := encodeSnapshot(st)
	if err != nil {
		t.Fatal(err)
	}
	for schema, data := range map[int][]byte{snapshotKeysSchema: snap.Data, snapshotKeysSchemaJSONQueue: legacyData(t, st.queue.Snapshot(), snap.Data)} {
		for n := range len(data) {
			if _, err := decodeSnapshot(data[:n], schema, &loaded{}); !errors.Is(err, errSnapshotData) {
				t.Fatalf("schema %d cut to %d of %d bytes: err %v, want errSnapshotData", schema, n, len(data), err)
			}
		}
		if _, err := decodeSnapshot(append(data, 0), schema, &loaded{}); !errors.Is(err, errSnapshotData) {
			t.Fatalf("schema %d, a byte after the end: err %v, want errSnapshotData", schema, err)
		}
	}
	if _, err := decodeSnapshot(snap.Data, 1, &loaded{}); !errors.Is(err, errSnapshotData) {
		t.Fatalf("schema 1: err %v, want errSnapshotData", err)
	}
	huge := appendBytes(nil, []byte(`{"player":"alice"}`))
	huge = append(huge, 0xff, 0xff, 0xff, 0xff, 0x0f) // 4 billion keys
	if _, err := decodeSnapshot(huge, snapshotKeysSchemaJSONQueue, &loaded{}); !errors.Is(err, errSnapshotData) {
		t.Fatalf("a key count past the data: err %v", err)
	}
}

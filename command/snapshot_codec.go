package command

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// A snapshot's Data is the queue's state (domain.QueueSnapshot, versioned
// by domain.SnapshotSchema) followed by the idempotency keys the queue
// remembers, both in a compact binary form: a cold load decodes it on the
// way to every first command after a restart, and as JSON the keys cost
// more than the rest of the load together (schema 1) and the queue's state
// about half of what was left (schema 2, which still loads). All integers
// are varints:
//
//	the queue (schema 3): string player, varint version,
//	  uvarint number of tasks, then for each: string ID, string type,
//	    varint count, varint done, time enqueued-at;
//	  byte stopped, string stopped reason,
//	  byte 1 and the repetition (string task ID, varint number,
//	    time started-at, time due-at, varint duration ms,
//	    8 bytes efficiency (IEEE 754, little endian), map consumed,
//	    string skill, varint XP, map outputs), or byte 0;
//	  map XP, map inventory, time updated-at
//	  (schema 2: uvarint len(queue JSON), queue JSON)
//	uvarint number of keys, then for each key, oldest first:
//	  string key, 16 bytes first event ID, varint version,
//	  uvarint position commit, uvarint position seq,
//	  byte 1 and the task it queued (string task ID, string type,
//	  varint count, varint position, varint enqueued-at Unix ms), or byte 0
//
// where a string is its uvarint length and its bytes, a time its varint
// Unix seconds and uvarint nanoseconds (UTC), and a map its uvarint length
// and its entries (string key, varint value) in key order.

// snapshotKeysSchemaJSONQueue is the schema whose queue is JSON (2), which
// loads still.
const snapshotKeysSchemaJSONQueue = 2

// errSnapshotData is a snapshot whose Data does not decode.
var errSnapshotData = errors.New("malformed snapshot data")

// encodeSnapshot encodes st (its lock held) as a snapshot.
func encodeSnapshot(st *loaded) (eventstore.Snapshot, error) {
	b := make([]byte, 0, 256+len(st.order)*80)
	b = appendQueue(b, st.queue.Snapshot())
	b = binary.AppendUvarint(b, uint64(len(st.order)))
	for _, key := range st.order {
		rec := st.keys[key]
		b = appendString(b, key)
		b = append(b, rec.firstID[:]...)
		b = binary.AppendVarint(b, rec.version)
		b = binary.AppendUvarint(b, rec.position.Commit)
		b = binary.AppendUvarint(b, rec.position.Seq)
		e := rec.enqueued
		if e == nil {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = appendString(b, string(e.TaskID))
		b = appendString(b, string(e.Type))
		b = binary.AppendVarint(b, int64(e.Count))
		b = binary.AppendVarint(b, int64(e.Position))
		b = binary.AppendVarint(b, e.EnqueuedAt.UnixMilli())
	}
	return eventstore.Snapshot{Version: st.version, EventID: st.last, Schema: snapshotSchema, Data: b}, nil
}

// decodeSnapshot decodes a snapshot's Data of schema keysSchema (the part
// of its Schema that is this package's): the queue's state and its keys
// (into st.keys and st.order).
func decodeSnapshot(data []byte, keysSchema int, st *loaded) (domain.QueueSnapshot, error) {
	// The keys' strings are cut from one copy of the data: one allocation
	// instead of one per key.
	d := decoder{b: data, s: string(data)}
	var q domain.QueueSnapshot
	switch keysSchema {
	case snapshotKeysSchema:
		q = d.queue()
	case snapshotKeysSchemaJSONQueue:
		if err := json.Unmarshal(d.bytes(), &q); err != nil {
			return q, errSnapshotData
		}
	default:
		return q, errSnapshotData
	}
	if d.err != nil {
		return q, errSnapshotData
	}
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each key takes at least a byte
		return q, errSnapshotData
	}
	st.keys, st.order = make(map[string]*keyRecord, n), make([]string, 0, n)
	recs := make([]keyRecord, n)
	for i := range recs {
		key := d.string()
		rec := &recs[i]
		copy(rec.firstID[:], d.take(len(uuid.UUID{})))
		rec.version = d.varint()
		rec.position = eventstore.Position{Commit: d.uvarint(), Seq: d.uvarint()}
		if flag := d.take(1); len(flag) == 1 && flag[0] == 1 {
			rec.enqueued = &domain.TaskEnqueued{TaskID: domain.TaskID(d.string()), Type: domain.TaskTypeID(d.string()),
				Count: int(d.varint()), Position: int(d.varint()), EnqueuedAt: time.UnixMilli(d.varint()).UTC()}
		}
		if d.err != nil {
			return q, errSnapshotData
		}
		st.keys[key] = rec
		st.order = append(st.order, key)
	}
	if d.err != nil || len(d.b) != 0 {
		return q, errSnapshotData
	}
	return q, nil
}

// appendQueue appends q in its binary form.
func appendQueue(b []byte, q domain.QueueSnapshot) []byte {
	b = appendString(b, string(q.Player))
	b = binary.AppendVarint(b, q.Version)
	b = binary.AppendUvarint(b, uint64(len(q.Tasks)))
	for _, t := range q.Tasks {
		b = appendString(b, string(t.ID))
		b = appendString(b, string(t.Type))
		b = binary.AppendVarint(b, int64(t.Count))
		b = binary.AppendVarint(b, int64(t.Done))
		b = appendTime(b, t.EnqueuedAt)
	}
	b = appendBool(b, q.Stopped)
	b = appendString(b, q.StoppedReason)
	b = appendBool(b, q.Repetition != nil)
	if r := q.Repetition; r != nil {
		b = appendString(b, string(r.TaskID))
		b = binary.AppendVarint(b, int64(r.Number))
		b = appendTime(b, r.StartedAt)
		b = appendTime(b, r.DueAt)
		b = binary.AppendVarint(b, r.DurationMs)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.Efficiency))
		b = appendMap(b, r.Consumed)
		b = appendString(b, string(r.Skill))
		b = binary.AppendVarint(b, r.XP)
		b = appendMap(b, r.Outputs)
	}
	b = appendMap(b, q.XP)
	b = appendMap(b, q.Inventory)
	return appendTime(b, q.UpdatedAt)
}

// queue reads a queue in its binary form.
func (d *decoder) queue() domain.QueueSnapshot {
	q := domain.QueueSnapshot{Player: domain.PlayerID(d.string()), Version: d.varint()}
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errSnapshotData
		return q
	}
	q.Tasks = make([]domain.SnapshotTask, n)
	for i := range q.Tasks {
		q.Tasks[i] = domain.SnapshotTask{ID: domain.TaskID(d.string()), Type: domain.TaskTypeID(d.string()),
			Count: int(d.varint()), Done: int(d.varint()), EnqueuedAt: d.time()}
	}
	q.Stopped, q.StoppedReason = d.bool(), d.string()
	if d.bool() {
		r := &domain.SnapshotRepeat{TaskID: domain.TaskID(d.string()), Number: int(d.varint()), StartedAt: d.time(), DueAt: d.time(),
			DurationMs: d.varint()}
		if b := d.take(8); b != nil {
			r.Efficiency = math.Float64frombits(binary.LittleEndian.Uint64(b))
		}
		r.Consumed = decodeMap[domain.ItemID](d)
		r.Skill, r.XP = domain.SkillID(d.string()), d.varint()
		r.Outputs = decodeMap[domain.ItemID](d)
		q.Repetition = r
	}
	q.XP = decodeMap[domain.SkillID](d)
	q.Inventory = decodeMap[domain.ItemID](d)
	q.UpdatedAt = d.time()
	return q
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// appendTime appends t exactly (to the nanosecond; the zero time too).
func appendTime(b []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

// appendMap appends m's entries in key order (the same state, the same
// bytes).
func appendMap[K ~string](b []byte, m map[K]int64) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp.Compare)
	for _, k := range keys {
		b = binary.AppendVarint(appendString(b, string(k)), m[k])
	}
	return b
}

// decodeMap reads a map; an empty one is nil, as it is in a
// domain.QueueSnapshot.
func decodeMap[K ~string](d *decoder) map[K]int64 {
	n := d.uvarint()
	if n == 0 || n > uint64(len(d.b)) {
		if n != 0 {
			d.err = errSnapshotData
		}
		return nil
	}
	m := make(map[K]int64, n)
	for range n {
		k := K(d.string())
		m[k] = d.varint()
	}
	return m
}

func appendBytes(b, s []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// decoder reads the snapshot's binary form; the first error sticks and
// makes every later read return zero values.
type decoder struct {
	b   []byte
	s   string // the whole data as a string, when strings are cut from it
	err error
}

// string reads a string, cut from d.s when it is set.
func (d *decoder) string() string {
	b := d.bytes()
	if d.err != nil {
		return ""
	}
	if len(d.s) == 0 {
		return string(b)
	}
	off := len(d.s) - len(d.b) - len(b) // d.b is the tail of d.s's bytes
	return d.s[off : off+len(b)]
}

func (d *decoder) bool() bool {
	b := d.take(1)
	if len(b) == 1 && b[0] > 1 {
		d.err = errSnapshotData
	}
	return len(b) == 1 && b[0] == 1
}

// time reads a time; a nanosecond count of a second or more is refused.
func (d *decoder) time() time.Time {
	sec, nsec := d.varint(), d.uvarint()
	if nsec >= 1e9 {
		d.err = errSnapshotData
	}
	if d.err != nil {
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (d *decoder) take(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		d.err = errSnapshotData
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errSnapshotData
		return nil
	}
	return d.take(int(n))
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errSnapshotData
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errSnapshotData
		return 0
	}
	d.b = d.b[n:]
	return v
}

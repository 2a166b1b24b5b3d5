package command

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// A snapshot's Data is the queue's state as JSON (domain.QueueSnapshot,
// versioned by domain.SnapshotSchema) followed by the idempotency keys the
// queue remembers in a compact binary form: a cold load decodes up to
// Config.KeysPerQueue keys (100 by default), which as JSON cost more than
// the rest of the load together. All integers are varints:
//
//	uvarint len(queue JSON), queue JSON
//	uvarint number of keys, then for each key, oldest first:
//	  string key, 16 bytes first event ID, varint version,
//	  uvarint position commit, uvarint position seq,
//	  byte 1 and the task it queued (string task ID, string type,
//	  varint count, varint position, varint enqueued-at Unix ms), or byte 0
//
// where a string is its uvarint length and its bytes.

// errSnapshotData is a snapshot whose Data does not decode.
var errSnapshotData = errors.New("malformed snapshot data")

// encodeSnapshot encodes st (its lock held) as a snapshot.
func encodeSnapshot(st *loaded) (eventstore.Snapshot, error) {
	queue, err := json.Marshal(st.queue.Snapshot())
	if err != nil {
		return eventstore.Snapshot{}, fmt.Errorf("encode the snapshot: %w", err)
	}
	b := make([]byte, 0, len(queue)+16+len(st.order)*80)
	b = appendBytes(b, queue)
	b = binary.AppendUvarint(b, uint64(len(st.order)))
	for _, key := range st.order {
		rec := st.keys[key]
		b = appendBytes(b, []byte(key))
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
		b = appendBytes(b, []byte(e.TaskID))
		b = appendBytes(b, []byte(e.Type))
		b = binary.AppendVarint(b, int64(e.Count))
		b = binary.AppendVarint(b, int64(e.Position))
		b = binary.AppendVarint(b, e.EnqueuedAt.UnixMilli())
	}
	return eventstore.Snapshot{Version: st.version, EventID: st.last, Schema: snapshotSchema, Data: b}, nil
}

// decodeSnapshot decodes a snapshot's Data: the queue's state and its keys
// (into st.keys and st.order).
func decodeSnapshot(data []byte, st *loaded) (domain.QueueSnapshot, error) {
	d := decoder{b: data}
	var q domain.QueueSnapshot
	if err := json.Unmarshal(d.bytes(), &q); err != nil || d.err != nil {
		return q, errSnapshotData
	}
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each key takes at least a byte
		return q, errSnapshotData
	}
	st.keys, st.order = make(map[string]*keyRecord, n), make([]string, 0, n)
	for range n {
		key := string(d.bytes())
		rec := &keyRecord{}
		copy(rec.firstID[:], d.take(len(uuid.UUID{})))
		rec.version = d.varint()
		rec.position = eventstore.Position{Commit: d.uvarint(), Seq: d.uvarint()}
		if flag := d.take(1); len(flag) == 1 && flag[0] == 1 {
			rec.enqueued = &domain.TaskEnqueued{TaskID: domain.TaskID(d.bytes()), Type: domain.TaskTypeID(d.bytes()),
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

func appendBytes(b, s []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// decoder reads the snapshot's binary form; the first error sticks and
// makes every later read return zero values.
type decoder struct {
	b   []byte
	err error
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

package command

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// A queue's stream grows by every command and every repetition (a player
// running 3-second repetitions around the clock writes ~57,000 events a
// day), so loading it from the start makes an old player's first command
// after a restart or an eviction cost seconds. Where the store keeps
// snapshots (Config.Snapshots), Queues stores one every
// Config.SnapshotEvery events (default 20): the queue's state and the idempotency keys
// it remembers, as of a version, and the ID of the event at that version;
// and at the end of the command of a cold load that read a quarter of
// that or more after the snapshot (a queue loaded again and again, after
// evictions or restarts, reads a short tail each time; a queue kept in
// the cache is snapshotted as it was).
// Loading reads the snapshot and the stream from that version on, and
// takes the snapshot only if its event is there (a snapshot of another
// history, such as a log restored from an older backup, is ignored), and
// only if it was written by this snapshotSchema (a changed aggregate
// rebuilds from the stream and snapshots again). A snapshot is a cache:
// failing to read or save one costs a longer load, never a wrong one.

// snapshotSaveTimeout bounds one background save.
const snapshotSaveTimeout = 10 * time.Second

// snapshotSavers bounds the saves in flight; a snapshot due while they are
// busy is taken later.
const snapshotSavers = 4

// snapshotKeysSchema versions what this package adds to the queue's state
// in a snapshot (the encoding in snapshot_codec.go); a snapshot's schema
// is snapshotSchema, which combines it with domain.SnapshotSchema.
// 1: JSON; 2: the queue as JSON, the keys in binary; 3: both in binary.
// Snapshots of 2 load still (their queue decodes from JSON); the next
// snapshot of the stream replaces them.
const snapshotKeysSchema = 3

// snapshotSchema is the schema of the snapshots Queues writes and reads.
const snapshotSchema = domain.SnapshotSchema<<8 | snapshotKeysSchema

// snapshotter takes and reads the snapshots of Queues.
type snapshotter struct {
	store eventstore.SnapshotStore // nil: no snapshots
	every int64
	slots chan struct{}
	wg    sync.WaitGroup
}

func newSnapshotter(store EventStore, snaps eventstore.SnapshotStore, every int) *snapshotter {
	s := &snapshotter{every: int64(every), slots: make(chan struct{}, snapshotSavers)}
	if snaps == nil {
		snaps, _ = store.(eventstore.SnapshotStore)
	}
	if every > 0 {
		s.store = snaps
	}
	return s
}

// load returns the state of the stream's snapshot, to be checked against
// the stream (loaded.check), or nil when there is none usable.
func (s *snapshotter) load(ctx context.Context, stream string, player domain.PlayerID, rules domain.Rules) *loaded {
	if s.store == nil {
		return nil
	}
	snap, ok, err := s.store.ReadSnapshot(ctx, stream)
	if err != nil || !ok || snap.Schema>>8 != domain.SnapshotSchema {
		return nil
	}
	st := &loaded{last: snap.EventID, check: snap.EventID, snapshotAt: snap.Version, version: snap.Version}
	d, err := decodeSnapshot(snap.Data, snap.Schema&0xff, st)
	if err != nil || d.Player != player || d.Version != snap.Version {
		return nil
	}
	if st.queue, err = domain.RestoreQueue(d, rules); err != nil {
		return nil
	}
	return st
}

// due reports whether st has grown enough since its last snapshot, or was
// loaded cold from a long tail (coldTail) and has a new version since.
func (s *snapshotter) due(st *loaded) bool {
	if s.store == nil || st == nil || st.check != uuid.Nil || st.last == uuid.Nil {
		return false
	}
	grown := st.version - st.snapshotAt
	return grown >= s.every || st.snapshotSoon && grown > 0
}

// coldTail is the tail of a cold load past which the queue is snapshotted
// at once: a quarter of the interval (at least 1).
func (s *snapshotter) coldTail() int64 { return max(1, s.every/4) }

// take encodes st (its lock held) and saves it in the background.
func (s *snapshotter) take(stream string, st *loaded) {
	select {
	case s.slots <- struct{}{}:
	default:
		return // busy: the next command of the stream tries again
	}
	snap, err := encodeSnapshot(st)
	if err != nil {
		<-s.slots
		return
	}
	st.snapshotAt, st.snapshotSoon = st.version, false
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.slots }()
		ctx, cancel := context.WithTimeout(context.Background(), snapshotSaveTimeout)
		defer cancel()
		_ = s.store.SaveSnapshot(ctx, stream, snap) // a cache: a failed save costs a longer load
	}()
}

// wait waits for the saves in flight.
func (s *snapshotter) wait() { s.wg.Wait() }

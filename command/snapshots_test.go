package command_test

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/postgres"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
	"github.com/taskqueue/taskqueue/internal/teststore"
)

// grow makes n commands on alice's queue (each enqueues a one-repetition
// task the next one's time completes), with keys k0…k(n-1).
func grow(t *testing.T, h *command.Handlers, clk *clock, n int) {
	t.Helper()
	for i := range n {
		clk.add(10 * time.Second)
		if _, err := h.EnqueueTask.Handle(context.Background(), command.EnqueueTask{Request: req(fmt.Sprintf("k%d", i)), Type: "chop-wood", Count: 1}); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshotHandlers are handlers on store, with the snapshots of snaps.
func snapshotHandlers(t *testing.T, store command.EventStore, snaps eventstore.Store, clk *clock, every int) *command.Handlers {
	t.Helper()
	h, err := command.NewHandlers(store, command.Config{
		Rules: domain.Rules{Catalog: domain.DefaultCatalog(), QueueLimit: 10}, Clock: clk.now, SnapshotEvery: every,
		Snapshots: snaps.(eventstore.SnapshotStore),
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A queue that is not cached loads from its snapshot and reads only the
// events after it, to the same state and the same answers (idempotency
// keys included) as a load of the whole stream.
func TestColdLoadStartsFromTheSnapshot(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		ctx := context.Background()
		clk := newClock()
		writer := snapshotHandlers(t, store, store, clk, 50)
		grow(t, writer, clk, 120) // about 4 events each
		command.WaitSnapshots(writer)
		snap, ok, err := store.(eventstore.SnapshotStore).ReadSnapshot(ctx, "queue-alice")
		if err != nil || !ok {
			t.Fatalf("no snapshot after 120 commands: %v", err)
		}
		head, err := store.StreamVersion(ctx, "queue-alice")
		if err != nil {
			t.Fatal(err)
		}
		if snap.Version < head-60 || snap.Schema != command.SnapshotSchema {
			t.Fatalf("snapshot at version %d (schema %d) of %d events: want one within 50 events of the end", snap.Version, snap.Schema, head)
		}

		counted := &teststore.Reads{Store: store}
		cold := snapshotHandlers(t, counted, store, clk, 50)
		whole := snapshotHandlers(t, store, store, clk, -1)
		got, err := cold.GetQueue.Handle(ctx, command.GetQueue{PlayerID: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		want, err := whole.GetQueue.Handle(ctx, command.GetQueue{PlayerID: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("from the snapshot:\n%+v\nfrom the whole stream:\n%+v", got, want)
		}
		if n := counted.Events.Load(); n != head-snap.Version+1 {
			t.Fatalf("the cold load read %d events; want the %d after the snapshot and its own", n, head-snap.Version)
		}

		// A retry of a command from before the snapshot is answered as the
		// duplicate it is, by both.
		answers := map[string]command.EnqueueTaskResult{}
		for name, h := range map[string]*command.Handlers{"snapshot": cold, "whole": whole} {
			res, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req("k50"), Type: "chop-wood", Count: 1})
			if err != nil || !res.Duplicate || res.Task.Type != "chop-wood" {
				t.Fatalf("%s: retry of k50 = %+v, %v; want a duplicate with its task", name, res, err)
			}
			answers[name] = res
		}
		if !reflect.DeepEqual(answers["snapshot"], answers["whole"]) {
			t.Fatalf("the retry's answer from the snapshot:\n%+v\nfrom the whole stream:\n%+v", answers["snapshot"], answers["whole"])
		}
	})
}

// A snapshot whose event is not at its version in the stream (a log
// restored from an older backup) or of another schema is ignored: the
// queue loads from the start.
func TestForeignSnapshotsAreIgnored(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		ctx := context.Background()
		clk := newClock()
		writer := snapshotHandlers(t, store, store, clk, -1)
		grow(t, writer, clk, 30)
		want, err := writer.GetQueue.Handle(ctx, command.GetQueue{PlayerID: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		data := []byte(fmt.Sprintf(`{"queue":{"player":"alice","version":40,"tasks":[],"xp":{"woodcutting":999999},"updatedAt":%q}}`, t0.Format(time.RFC3339)))
		snaps := store.(eventstore.SnapshotStore)
		// In this order: the load after the first case snapshots the real
		// history (schema SnapshotSchema), which the second replaces.
		other, otherID := foreignSnapshot(t, eventAt(t, store, 40))
		for _, c := range []struct {
			name    string
			snap    eventstore.Snapshot
			foreign uuid.UUID
		}{
			{"another history", other, otherID},
			{"another schema", eventstore.Snapshot{Version: 41, EventID: eventAt(t, store, 41), Schema: command.SnapshotSchema + 1, Data: data}, uuid.Nil},
		} {
			name, snap := c.name, c.snap
			if err := snaps.SaveSnapshot(ctx, "queue-alice", snap); err != nil {
				t.Fatal(err)
			}
			if c.foreign != uuid.Nil {
				// SaveSnapshot stores only a snapshot of an event the
				// stream holds: the row is re-pointed to the other
				// history's event, as a log restored from an older
				// backup would leave it.
				repointSnapshot(t, store, "queue-alice", c.foreign)
			}
			if stored, ok, err := snaps.ReadSnapshot(ctx, "queue-alice"); err != nil || !ok || stored.Version != snap.Version || stored.Schema != snap.Schema {
				t.Fatalf("%s: the stored snapshot is v%d schema %d (%v, %v), want the foreign one", name, stored.Version, stored.Schema, ok, err)
			}
			counted := &teststore.Reads{Store: store}
			cold := snapshotHandlers(t, counted, store, clk, 50)
			got, err := cold.GetQueue.Handle(ctx, command.GetQueue{PlayerID: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			command.WaitSnapshots(cold)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: loaded %+v, want %+v", name, got.View, want.View)
			}
			if counted.Events.Load() < want.Version {
				t.Fatalf("%s: read %d events, want the whole stream (%d)", name, counted.Events.Load(), want.Version)
			}
		}
	})
}

// foreignSnapshot returns a genuine snapshot of alice's queue at version
// 40 in another history (another store, where her queue was only stopped
// and started), named as of the event at; foreign is the other history's
// event at version 40.
func foreignSnapshot(t *testing.T, at uuid.UUID) (snap eventstore.Snapshot, foreign uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	other := teststore.SQLite(t, "")
	h := snapshotHandlers(t, other, other, newClock(), 40)
	for i := range 40 {
		r := req(fmt.Sprint("toggle-", i))
		var err error
		if i%2 == 0 {
			_, err = h.StopQueue.Handle(ctx, command.StopQueue{Request: r})
		} else {
			_, err = h.StartQueue.Handle(ctx, command.StartQueue{Request: r})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	command.WaitSnapshots(h)
	snap, ok, err := other.ReadSnapshot(ctx, "queue-alice")
	if err != nil || !ok || snap.Version != 40 {
		t.Fatalf("the other history's snapshot: v%d, %v, %v; want v40", snap.Version, ok, err)
	}
	foreign, snap.EventID = snap.EventID, at
	return snap, foreign
}

// repointSnapshot makes stream's stored snapshot name the event id,
// bypassing SaveSnapshot's check that the stream holds it.
func repointSnapshot(t *testing.T, store eventstore.Store, stream string, id uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	var (
		n   int64
		err error
	)
	switch s := store.(type) {
	case *sqlite.Store:
		err = s.WriteTx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE stream_snapshots SET event_id = ? WHERE stream_id = ?`, id.String(), stream)
			if err == nil {
				n, err = res.RowsAffected()
			}
			return err
		})
	case *postgres.Store:
		var tag pgconn.CommandTag
		tag, err = s.Pool().Exec(ctx, `UPDATE stream_snapshots SET event_id = $1::text::uuid WHERE stream_id = $2`, id.String(), stream)
		n = tag.RowsAffected()
	default:
		t.Fatalf("re-point a snapshot in a %T", store)
	}
	if err != nil || n != 1 {
		t.Fatalf("re-point %s's snapshot: %d rows, %v", stream, n, err)
	}
}

func eventAt(t *testing.T, store eventstore.Store, version int64) uuid.UUID {
	t.Helper()
	evs, err := store.ReadStream(context.Background(), "queue-alice", version, 1)
	if err != nil || len(evs) != 1 {
		t.Fatalf("event %d: %v", version, err)
	}
	return evs[0].ID
}

// A cold load that reads a tail of a quarter of SnapshotEvery events or
// more snapshots the queue at the end of its command (the next cold load
// reads a short tail); one with a shorter tail does not.
func TestColdLoadOfALongTailSnapshots(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		ctx := context.Background()
		clk := newClock()
		writer := snapshotHandlers(t, store, store, clk, -1) // takes none
		snaps := store.(eventstore.SnapshotStore)
		keys := 0
		toggle := func(n int) {
			t.Helper()
			for range n {
				keys++
				r := req(fmt.Sprint("toggle-", keys))
				var err error
				if keys%2 == 1 {
					_, err = writer.StopQueue.Handle(ctx, command.StopQueue{Request: r})
				} else {
					_, err = writer.StartQueue.Handle(ctx, command.StartQueue{Request: r})
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		// coldLoad loads alice's queue in new handlers (a snapshot every
		// 20 events: a cold tail of 5 or more snapshots) and returns the
		// version of the snapshot stored after it.
		coldLoad := func() int64 {
			t.Helper()
			cold := snapshotHandlers(t, store, store, clk, 20)
			if _, err := cold.GetQueue.Handle(ctx, command.GetQueue{PlayerID: "alice"}); err != nil {
				t.Fatal(err)
			}
			command.WaitSnapshots(cold)
			snap, ok, err := snaps.ReadSnapshot(ctx, "queue-alice")
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return 0
			}
			return snap.Version
		}
		head := func() int64 {
			t.Helper()
			v, err := store.StreamVersion(ctx, "queue-alice")
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		// An empty queue stopped and started: one event per command.
		toggle(6)
		h := head()
		if h != 6 {
			t.Fatalf("%d events after 6 stops and starts; want 6", h)
		}
		if got := coldLoad(); got != h {
			t.Fatalf("a cold load of %d events (no snapshot) left a snapshot at %d; want one at %d", h, got, h)
		}
		toggle(4) // a tail of 4: no snapshot
		if got := coldLoad(); got != h {
			t.Fatalf("a cold load of a 4-event tail left the snapshot at %d; want it still at %d", got, h)
		}
		toggle(1) // a tail of 5
		if got, want := coldLoad(), head(); got != want {
			t.Fatalf("a cold load of a 5-event tail left the snapshot at %d; want one at %d", got, want)
		}
	})
}

package realtime_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/realtime"
	"github.com/taskqueue/taskqueue/tracing"
)

// Everything acknowledged before a resume is in its catch-up, before
// subscribed, on PostgreSQL too: subscribe, close, make 3 commands (each
// answered: enqueue, remove, stop or start), reconnect with since = the last position seen. In half of the
// rounds another transaction (begun before the commands, still open) holds
// the log's readable prefix back, as concurrent writers do; it ends a
// little after the reconnect, or as soon as subscribed arrives. Before the
// catch-up waited for the committed head, the 3 commands' events came
// after subscribed, as live messages (issue 15, point 1).
func TestResumeCatchUpHoldsEverythingAcknowledged(t *testing.T) {
	store, pool := teststore.Postgres(t, postgresURL(t), 4)
	h := newHandlers(t, store)
	// The store behind the app's decorators, as app.startRealtime gives it.
	s := startHub(t, realtime.Config{Store: tracing.Subscriber(tracing.Store(store), "fanout")})
	const player = "alice"
	// The player watching their queue, and an admin watching every queue
	// (whose catch-up waits for the whole log's committed head).
	watchers := []struct {
		tok, watch, since string
	}{
		{tok: token(t, s.tokens, player, auth.RolePlayer), watch: player},
		{tok: token(t, s.tokens, "root", auth.RoleAdmin), watch: realtime.AllPlayers},
	}
	ctx := context.Background()
	for i := range watchers {
		c := mustDial(t, s, watchers[i].tok)
		c.subscribe(watchers[i].watch, "")
		watchers[i].since = readUntilSubscribed(t, c, nil).Position
		c.conn.CloseNow()
	}

	for round := range 8 {
		before := streamVersion(t, store, player)
		var release func()
		if round%2 == 0 {
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
				t.Fatal(err)
			}
			var once sync.Once
			release = func() { once.Do(func() { _ = tx.Rollback(ctx) }) }
			t.Cleanup(release)
		}
		req := command.Request{PlayerID: player, Actor: player}
		res, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req, Type: "chop-wood", Count: 2})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.RemoveTask.Handle(ctx, command.RemoveTask{Request: req, TaskID: string(res.Task.TaskID)}); err != nil {
			t.Fatal(err)
		}
		if round%4 < 2 {
			_, err = h.StopQueue.Handle(ctx, command.StopQueue{Request: req})
		} else {
			_, err = h.StartQueue.Handle(ctx, command.StartQueue{Request: req})
		}
		if err != nil {
			t.Fatal(err)
		}
		want := streamVersion(t, store, player)

		clients := make([]*client, len(watchers))
		for i, w := range watchers {
			clients[i] = mustDial(t, s, w.tok)
			clients[i].subscribe(w.watch, w.since)
		}
		if release != nil {
			time.AfterFunc(300*time.Millisecond, release)
		}
		for i, c := range clients {
			var got []int64
			sub := readUntilSubscribed(t, c, func(m message) {
				if m.Type != realtime.TypeEvent {
					t.Fatalf("round %d, %s: %s message in a resume from %s", round, watchers[i].watch, m.Type, watchers[i].since)
				}
				got = append(got, m.Event.Version)
			})
			if len(got) != int(want-before) || (len(got) > 0 && (got[0] != before+1 || got[len(got)-1] != want)) {
				t.Fatalf("round %d (held back: %t), watching %s: catch-up before subscribed had versions %v, want %d to %d",
					round, release != nil, watchers[i].watch, got, before+1, want)
			}
			watchers[i].since = sub.Position
			c.conn.CloseNow()
		}
		if release != nil {
			release()
		}
	}
}

// A since of another store ("3", as SQLite hands positions out, on
// PostgreSQL) gets a reset, as docs/REALTIME.md promises, not a replay of
// the queue from its start (issue 15, point 2).
func TestSinceOfAnotherStoreGetsAReset(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		h := newHandlers(t, store)
		s := startHub(t, realtime.Config{Store: store})
		const player = "bob"
		req := command.Request{PlayerID: player, Actor: player}
		for range 3 {
			if _, err := h.EnqueueTask.Handle(context.Background(), command.EnqueueTask{Request: req, Type: "chop-wood", Count: 2}); err != nil {
				t.Fatal(err)
			}
		}
		// The other store's form of a position near the start of the log
		// (the stream's own event tells which store this is: the log's
		// readable head may still be empty on PostgreSQL).
		evs, err := store.ReadStream(context.Background(), domain.PlayerID(player).Stream(), 1, 1)
		if err != nil || len(evs) != 1 {
			t.Fatalf("read %s's first event: %d, %v", player, len(evs), err)
		}
		foreign := "3"
		if evs[0].Position.Commit == 0 {
			foreign = "7315:3"
		}
		c := mustDial(t, s, token(t, s.tokens, player, auth.RolePlayer))
		c.subscribe(player, foreign)
		m := c.mustRead()
		if m.Type != realtime.TypeReset {
			t.Fatalf("since %s: first message %s (v%d), want a reset", foreign, m.Type, eventVersion(m))
		}
		if v := m.queueVersion(t); v != streamVersion(t, store, player) {
			t.Errorf("reset at version %d, want %d", v, streamVersion(t, store, player))
		}
		if m := c.mustRead(); m.Type != realtime.TypeSubscribed {
			t.Errorf("then %s, want subscribed", m.Type)
		}
	})
}

// readUntilSubscribed reads the messages before subscribed (each given to
// each, when set) and returns subscribed.
func readUntilSubscribed(t *testing.T, c *client, each func(message)) message {
	t.Helper()
	for {
		m := c.mustRead()
		if m.Type == realtime.TypeSubscribed {
			return m
		}
		if each != nil {
			each(m)
		}
	}
}

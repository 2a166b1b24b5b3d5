package realtime_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/realtime"
	"github.com/taskqueue/taskqueue/web/auth"
)

// A player forgotten (their stream deleted, Hub.ForgetPlayer): their socket
// closes with 4401 "player forgotten" and they are not announced offline;
// an admin watching every queue who
// resumes with a position among the forgotten events gets exactly the
// other player's events after it, none of the forgotten one's, then live
// ones.
func TestResumeAcrossAForgottenPlayer(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		h := newHandlers(t, store)
		presence := &presenceLog{}
		s := startHub(t, realtime.Config{Store: store, Presence: presence, OfflineGrace: 20 * time.Millisecond})
		enqueue := func(player, key string) command.EnqueueTaskResult {
			t.Helper()
			res, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Type: "chop-wood", Count: 2,
				Request: command.Request{PlayerID: player, IdempotencyKey: key}})
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		enqueue("bob", "b1")
		enqueue("alice", "a1")
		among := enqueue("alice", "a2").Position
		b2 := enqueue("bob", "b2")
		enqueue("alice", "a3")

		alice := mustDial(t, s, token(t, s.tokens, "alice", auth.RolePlayer))
		alice.subscribe("alice", "")
		if m := alice.mustRead(); m.Type != realtime.TypeSubscribed && m.Type != realtime.TypeReset {
			t.Fatalf("alice's first message: %+v", m)
		}
		if _, err := store.DeleteStream(ctx, "queue-alice"); err != nil {
			t.Fatal(err)
		}
		s.hub.ForgetPlayer("alice")
		if code := alice.closeStatus(); code != realtime.CloseUnauthorized {
			t.Fatalf("the forgotten player's socket closed with %d, want %d", code, realtime.CloseUnauthorized)
		}

		// Bob's socket, closed after alice's: he is announced offline
		// after the grace period, she never is (no player.offline after
		// player.forgotten).
		bob := mustDial(t, s, token(t, s.tokens, "bob", auth.RolePlayer))
		bob.subscribe("bob", "")
		bob.mustRead()
		bob.conn.CloseNow()
		testenv.WaitFor(t, "bob announced offline", func() bool {
			return slices.ContainsFunc(presence.snapshot(), func(c string) bool { return strings.HasPrefix(c, "offline:bob") })
		})
		if calls := presence.snapshot(); !slices.Contains(calls, "online:alice") ||
			slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, "offline:alice") }) {
			t.Fatalf("presence calls %v: want alice online, and never offline once forgotten", calls)
		}

		admin := mustDial(t, s, token(t, s.tokens, "root", auth.RoleAdmin))
		admin.subscribe(realtime.AllPlayers, among.String())
		want, err := store.ReadStream(ctx, "queue-bob", 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		var missed []int64
		for _, e := range want {
			if among.Less(e.Position) {
				missed = append(missed, e.Version)
			}
		}
		if len(missed) == 0 || want[len(want)-1].Position != b2.Position {
			t.Fatalf("bob's events after the position: %v", missed)
		}
		b3 := enqueue("bob", "b3") // live, after the resume began
		var got []int64
		for len(got) < len(missed)+1 {
			m := admin.mustRead()
			switch m.Type {
			case realtime.TypeSubscribed:
			case realtime.TypeEvent:
				if m.PlayerID != "bob" {
					t.Fatalf("the admin got an event of %s after the forget: %+v", m.PlayerID, m)
				}
				got = append(got, m.Event.Version)
			default:
				t.Fatalf("unexpected %+v", m)
			}
		}
		if got[0] != missed[0] || got[len(got)-1] < b3.Version-int64(len(b3.Events))+1 {
			t.Fatalf("the admin's resume delivered bob's versions %v; want %v then the live ones", got, missed)
		}
		for i := 1; i < len(got); i++ {
			if got[i] != got[i-1]+1 {
				t.Fatalf("a gap or a duplicate in bob's versions: %v", got)
			}
		}
	})
}

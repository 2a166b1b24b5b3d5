package realtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/query"
	"github.com/taskqueue/taskqueue/realtime"
	"github.com/taskqueue/taskqueue/web/auth"
)

// A client that keeps dropping its socket at random points while a random
// workload runs on two players gets every event of its own queue exactly
// once and in order, each with the queue view after it; the last view
// equals the command side's. With a small MaxResumeEvents some resumes
// become resets, and the versions continue from the reset's snapshot.
func TestResumeAfterDisconnectsDeliversExactlyTheMissedEvents(t *testing.T) {
	cases := []struct {
		name       string
		maxResume  int
		wantResets bool
	}{
		{"resume", 1 << 20, false},
		{"resets", 3, true},
	}
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				h := newHandlers(t, store)
				s := startHub(t, realtime.Config{Store: store, MaxResumeEvents: tc.maxResume})
				player := []string{"alice", "carol"}[i]
				other := []string{"bob", "dave"}[i]
				tok := token(t, s.tokens, player, auth.RolePlayer)

				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				var done atomic.Bool
				go func() {
					workload(ctx, t, h, []string{player, other}, 250, uint64(i+7))
					done.Store(true)
				}()

				rng := rand.New(rand.NewPCG(42, uint64(i)))
				var (
					since     string
					next      int64 = -1 // the version the next event must have
					events    int
					resets    int
					lastQueue json.RawMessage
					conns     int
				)
				reached := func() bool {
					return done.Load() && next == streamVersion(t, store, player)+1
				}
				for !reached() {
					conns++
					c := mustDial(t, s, tok)
					c.subscribe(player, since)
					for k := 1 + rng.IntN(12); k > 0 && !reached(); k-- {
						// The workload may end without another event of
						// this player: a read that times out reconnects.
						m, err := c.read(2 * time.Second)
						if errors.Is(err, context.DeadlineExceeded) {
							if ctx.Err() != nil {
								t.Fatalf("stuck at version %d (since %s)", next, since)
							}
							break
						}
						if err != nil {
							t.Fatalf("read: %v", err)
						}
						switch m.Type {
						case realtime.TypeReset:
							if since == "" && conns > 1 {
								t.Fatalf("reset without a since after the first connection")
							}
							if since != "" {
								resets++
							}
							next = m.queueVersion(t) + 1
							lastQueue = m.Queue
						case realtime.TypeEvent:
							if m.PlayerID != player {
								t.Fatalf("%s got an event of %s", player, m.PlayerID)
							}
							if m.Event.Version != next {
								t.Fatalf("got version %d, want %d (since %s, connection %d)", m.Event.Version, next, since, conns)
							}
							if m.Queue != nil {
								if qv := m.queueVersion(t); qv != m.Event.Version {
									t.Fatalf("event v%d carries the queue at v%d", m.Event.Version, qv)
								}
								lastQueue = m.Queue
							}
							if m.Position != m.Event.Position {
								t.Fatalf("message position %s, event position %s", m.Position, m.Event.Position)
							}
							next++
							events++
						case realtime.TypeSubscribed:
						default:
							t.Fatalf("unexpected message %+v", m)
						}
						if m.Position == "" {
							t.Fatalf("%s message without a position", m.Type)
						}
						since = m.Position
					}
					c.conn.CloseNow()
					if tc.wantResets && rng.IntN(3) == 0 {
						// Stay away long enough to miss more than MaxResumeEvents.
						from := next
						testenv.WaitFor(t, "the queue to move on", func() bool {
							return done.Load() || streamVersion(t, store, player) >= from+int64(tc.maxResume)+1
						})
					}
				}
				if tc.wantResets && resets == 0 {
					t.Errorf("no reset in %d connections", conns)
				}
				if !tc.wantResets && resets != 0 {
					t.Errorf("%d resets with MaxResumeEvents %d", resets, tc.maxResume)
				}
				snap, err := h.GetQueue.Handle(ctx, command.GetQueue{PlayerID: player})
				if err != nil {
					t.Fatal(err)
				}
				want, _ := json.Marshal(snap.View)
				if got := normalized(t, lastQueue); !reflect.DeepEqual(got, normalized(t, want)) {
					t.Errorf("last queue view\n got %v\nwant %v", got, normalized(t, want))
				}
				// The state, as GET /api/queue gives it.
				var last struct{ State query.QueueState }
				if err := json.Unmarshal(lastQueue, &last); err != nil || last.State != query.QueueStateOf(snap.View) {
					t.Errorf("last queue state %q (%v), want %q", last.State, err, query.QueueStateOf(snap.View))
				}
				t.Logf("%d events over %d connections, %d resets, final version %d", events, conns, resets, next-1)
			})
		}
	})
}

package realtime_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/realtime"
)

// stuckWatermark is a read model that does not catch up while stuck: only
// a delivery that does not wait for it arrives before MaxWatermarkWait.
type stuckWatermark struct{ stuck atomic.Bool }

func (w *stuckWatermark) WaitFor(ctx context.Context, _ eventstore.Position) error {
	for w.stuck.Load() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// TestLocalAppendsDeliverExactlyOnceInOrder mixes appends made through
// this instance's LocalAppends (delivered from memory) with appends to the
// same queues through the bare store (another instance: delivered by the
// log), from concurrent writers: each player's socket gets every version
// of its queue exactly once, in order, each command's last event with the
// queue at its version; the admin watching every queue gets every event
// once, in log order; and local deliveries did not wait for the read model.
func TestLocalAppendsDeliverExactlyOnceInOrder(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		wm := &stuckWatermark{}
		s := startHub(t, realtime.Config{Store: store, SendBuffer: 1 << 14, Watermark: wm, MaxWatermarkWait: 2 * time.Second})
		local := realtime.NewLocalAppends(store)
		local.Deliver(s.hub)
		here, elsewhere := newHandlers(t, local), newHandlers(t, store)
		players := []string{"alice", "bob", "carol"}
		clients := map[string]*client{}
		for _, p := range players {
			c := mustDial(t, s, token(t, s.tokens, p, auth.RolePlayer))
			c.subscribe(p, "")
			c.mustRead() // reset
			c.mustRead() // subscribed
			clients[p] = c
		}
		admin := mustDial(t, s, token(t, s.tokens, "root", auth.RoleAdmin))
		admin.subscribe(realtime.AllPlayers, "")
		admin.mustRead() // reset
		admin.mustRead() // subscribed

		// A local command's event reaches its socket before the read
		// model's wait (2 s, not met while stuck) could end.
		wm.stuck.Store(true)
		start := time.Now()
		if _, err := here.StopQueue.Handle(context.Background(), command.StopQueue{Request: command.Request{PlayerID: "alice", Actor: "alice"}}); err != nil {
			t.Fatal(err)
		}
		if m := clients["alice"].mustRead(); m.Type != realtime.TypeEvent || m.Event.Version != 1 {
			t.Fatalf("alice: got %+v, want her first event", m)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("a local append took %s to reach its socket: it waited for the read model", d)
		}
		wm.stuck.Store(false)

		var wg sync.WaitGroup
		for i, h := range []*command.Handlers{here, elsewhere, here, elsewhere} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				workload(context.Background(), t, h, players, 40, uint64(10+i))
			}()
		}
		wg.Wait()

		// The processor's batch: one AppendMany through LocalAppends
		// completes the running repetition of each queue.
		later := func() time.Time { return time.Now().Add(24 * time.Hour) }
		proc, err := command.NewHandlers(local, command.Config{Clock: later})
		if err != nil {
			t.Fatal(err)
		}
		var batch command.CompleteRepetitions
		// Handlers of their own: each handler set caches the queues it
		// saw, and the workload wrote them through both.
		prep := newHandlers(t, local)
		for _, p := range players {
			req := command.Request{PlayerID: p, Actor: p}
			// An empty queue first: the workload may have left a task at
			// the head that cannot start (saw-planks without logs).
			q, err := prep.GetQueue.Handle(context.Background(), command.GetQueue{PlayerID: p})
			if err != nil {
				t.Fatal(err)
			}
			for _, task := range q.View.Tasks {
				_, err := prep.RemoveTask.Handle(context.Background(), command.RemoveTask{Request: req, TaskID: string(task.TaskID)})
				if err != nil && !errors.Is(err, domain.ErrTaskNotFound) { // finished meanwhile
					t.Fatalf("empty %s's queue: %v", p, err)
				}
			}
			_, _ = prep.StartQueue.Handle(context.Background(), command.StartQueue{Request: req})
			res, err := prep.EnqueueTask.Handle(context.Background(), command.EnqueueTask{Request: req, Type: "chop-wood", Count: 2})
			if err != nil || res.View.Repetition == nil {
				t.Fatalf("%s's chop-wood on an empty queue: %+v, %v; want it running", p, res.View, err)
			}
			rep := res.View.Repetition
			key := command.CompletionKey(string(rep.TaskID), rep.Number)
			batch.Completions = append(batch.Completions, command.CompleteRepetition{
				Request: command.Request{PlayerID: p, IdempotencyKey: key, CorrelationID: key, Actor: "system"},
				TaskID:  string(rep.TaskID), Number: rep.Number,
			})
		}
		// Once the hub's log has delivered each queue's last event, hold
		// it back (the admin's messages wait for the stuck read model):
		// the batch can only reach the players from this instance's
		// append. (Not store.Head: on PostgreSQL it is the log's safe
		// prefix, which another database's open transaction holds back.)
		for _, p := range players {
			evs, err := store.ReadStream(context.Background(), domain.PlayerID(p).Stream(), 1, 0)
			if err != nil || len(evs) == 0 {
				t.Fatalf("read %s's queue: %d events, %v", p, len(evs), err)
			}
			last := evs[len(evs)-1].Position
			testenv.WaitFor(t, "the hub to deliver "+p+"'s last event", func() bool {
				return !s.hub.Stats().Position.Less(last)
			})
		}
		wm.stuck.Store(true)
		before := s.hub.Stats().LocalDelivered
		results, err := proc.CompleteRepetitions.Handle(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		completed := 0
		for _, r := range results {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			completed += len(r.Events)
		}
		if got := s.hub.Stats().LocalDelivered - before; got != int64(completed) {
			t.Fatalf("%d of the batch's %d events were delivered locally, want all", got, completed)
		}
		wm.stuck.Store(false)

		total := 0
		for _, p := range players {
			evs, err := store.ReadStream(context.Background(), domain.PlayerID(p).Stream(), 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			total += len(evs)
			if p == "alice" {
				evs = evs[1:] // read above
			}
			for i, e := range evs {
				m := clients[p].mustRead()
				if m.Type != realtime.TypeEvent || m.PlayerID != p || m.Event.Version != e.Version || m.Position != e.Position.String() {
					t.Fatalf("%s: got %s of %s v%d at %s, want v%d at %s", p, m.Type, m.PlayerID, eventVersion(m), m.Position, e.Version, e.Position)
				}
				last := i+1 == len(evs) || evs[i+1].Metadata.CausationID != e.Metadata.CausationID
				if last && (m.Queue == nil || m.queueVersion(t) != e.Version) {
					t.Fatalf("%s: v%d ends its command but carries no queue at its version", p, e.Version)
				}
			}
			if m, err := clients[p].read(200 * time.Millisecond); err == nil {
				t.Fatalf("%s: got %+v after its last event: a duplicate", p, m)
			}
		}
		var prev eventstore.Position
		seen := map[string]int64{}
		for range total {
			m := admin.mustRead()
			pos, err := eventstore.ParsePosition(m.Position)
			if err != nil || m.Type != realtime.TypeEvent || m.Event.Version != seen[m.PlayerID]+1 || !prev.Less(pos) {
				t.Fatalf("admin: got %s of %s v%d at %s after v%d at %s", m.Type, m.PlayerID, eventVersion(m), m.Position, seen[m.PlayerID], prev)
			}
			seen[m.PlayerID], prev = m.Event.Version, pos
		}

	})
}

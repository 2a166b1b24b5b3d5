package realtime_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/realtime"
)

// observer is a faults.Observer that keeps what it heard.
type observer struct {
	mu       sync.Mutex
	errs     int
	degraded []bool
}

func (o *observer) TransientError(string, faults.Kind) { o.mu.Lock(); o.errs++; o.mu.Unlock() }
func (o *observer) Degraded(_ string, d bool) {
	o.mu.Lock()
	o.degraded = append(o.degraded, d)
	o.mu.Unlock()
}

// The hub's database goes away for 1 s and for 60 s (a TCP proxy between
// the hub's store and PostgreSQL refuses connections) while a player's
// queue keeps changing (commands written by another instance, straight to
// the database). A WebSocket client subscribed through the outage receives
// every event after it, in order, with no gap and no duplicate; the hub
// logs one line when the outage starts and one when it ends, and tells the
// Observer.
func TestHubThroughDatabaseOutages(t *testing.T) {
	for _, length := range []time.Duration{time.Second, 60 * time.Second} {
		t.Run(length.String(), func(t *testing.T) {
			if length > time.Second && testing.Short() {
				t.Skip("a 60 s outage")
			}
			t.Parallel()
			url := postgresURL(t)
			proxied, proxy := testenv.ProxyPostgres(t, url)
			hubStore := openPostgres(t, proxied) // the hub's instance, through the proxy
			writer := openPostgres(t, url)       // another instance, never cut
			h := newHandlers(t, writer)
			var logs testenv.SyncBuffer
			obs := &observer{}
			s := startHub(t, realtime.Config{Store: hubStore, Observer: obs, SendBuffer: 1 << 14,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			const player = "olga"
			c := mustDial(t, s, token(t, s.tokens, player, auth.RolePlayer))
			c.subscribe(player, "")
			m := c.mustRead()
			if m.Type != realtime.TypeReset {
				t.Fatalf("first message %+v, want a reset", m)
			}
			next := m.queueVersion(t) + 1
			c.mustRead() // subscribed
			// The client reads all the time, as a browser does (it must, to
			// answer the server's pings).
			type read struct {
				m   message
				err error
			}
			msgs := make(chan read, 1024)
			go func() {
				for {
					m, err := c.read(time.Hour)
					msgs <- read{m, err}
					if err != nil {
						return
					}
				}
			}()
			// expect reads events until the queue's version, each the next.
			expect := func(what string) {
				t.Helper()
				want := streamVersion(t, writer, player)
				for next <= want {
					var r read
					select {
					case r = <-msgs:
					case <-time.After(2 * time.Minute):
						r.err = context.DeadlineExceeded
					}
					m, err := r.m, r.err
					if err != nil {
						t.Fatalf("%s: waiting for version %d of %d: %v", what, next, want, err)
					}
					if m.Type != realtime.TypeEvent || m.Event.Version != next {
						t.Fatalf("%s: got %s v%d, want event v%d (no gap, no duplicate)", what, m.Type, eventVersion(m), next)
					}
					next++
				}
			}
			change := func(n int) {
				t.Helper()
				for i := range n {
					req := command.Request{PlayerID: player, Actor: player}
					if _, err := h.EnqueueTask.Handle(context.Background(), command.EnqueueTask{Request: req, Type: "chop-wood", Count: 1}); err != nil {
						t.Fatal(err)
					}
					if _, err := h.StopQueue.Handle(context.Background(), command.StopQueue{Request: req}); err != nil {
						t.Fatal(err)
					}
					if _, err := h.StartQueue.Handle(context.Background(), command.StartQueue{Request: req}); err != nil {
						t.Fatal(err)
					}
					if i%3 == 2 {
						drain(t, h, player)
					}
				}
			}
			change(3)
			expect("before the outage")

			proxy.Stop()
			restarted := false
			t.Cleanup(func() {
				if !restarted {
					proxy.Start(t)
				}
			})
			change(5) // while the hub cannot read the log
			time.Sleep(length)
			proxy.Start(t)
			restarted = true
			change(5)
			expect("after the outage")
			change(3)
			expect("later")
			select {
			case extra := <-msgs:
				t.Fatalf("an extra message after the last event: %+v (%v)", extra.m, extra.err)
			case <-time.After(300 * time.Millisecond):
			}

			deadline := time.Now().Add(time.Minute)
			for strings.Count(logs.String(), "realtime hub: recovered") == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n, m := strings.Count(logs.String(), "realtime hub: a dependency is unavailable"), strings.Count(logs.String(), "realtime hub: recovered"); n != 1 || m != 1 {
				t.Errorf("%d lines for the start and %d for the end of one outage, want 1 and 1:\n%s", n, m, logs.String())
			}
			if n := strings.Count(logs.String(), "level=ERROR"); n != 0 {
				t.Errorf("%d ERROR lines for a transient outage, want none:\n%s", n, logs.String())
			}
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if len(obs.degraded) != 2 || !obs.degraded[0] || obs.degraded[1] || obs.errs == 0 {
				t.Errorf("the Observer heard %d errors and degraded %v, want some and true then false", obs.errs, obs.degraded)
			}
			t.Logf("%d events delivered in order; %d failed attempts during the %s outage", next-1, obs.errs, length)
		})
	}
}

// drain removes the queued tasks of player, so its queue stays short.
func drain(t testing.TB, h *command.Handlers, player string) {
	t.Helper()
	snap, err := h.GetQueue.Handle(context.Background(), command.GetQueue{PlayerID: player})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range snap.View.Tasks {
		_, err := h.RemoveTask.Handle(context.Background(), command.RemoveTask{
			Request: command.Request{PlayerID: player, Actor: player}, TaskID: string(tk.TaskID),
		})
		if err != nil {
			t.Fatal(fmt.Errorf("remove %s: %w", tk.TaskID, err))
		}
	}
}

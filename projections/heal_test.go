package projections

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/projections/projectiontest"
)

// proxiedPostgres opens a PostgreSQL server of the test's own twice: b,
// whose event store and read-model database (what the Runner uses, as in
// production: one pool for both) go through a TCP proxy the test cuts, and
// writer, a store on the same database connected directly, so that the log
// keeps growing while the projections cannot reach it. A server of its own
// because a partition that catches an open write transaction holds back
// the horizon of every reader of the server: on the shared one, every
// other test's subscriptions would stall with it.
func proxiedPostgres(t testing.TB) (b backend, writer eventstore.Store, proxy *testenv.TCPProxy) {
	t.Helper()
	url := testenv.StartPostgresServer(t).URL()
	w, _ := teststore.Postgres(t, url, 2)
	purl, proxy := testenv.ProxyPostgres(t, url)
	s, pool := teststore.Postgres(t, purl, 3)
	return backend{name: "postgres", store: s, db: NewPostgresDB(pool), url: purl}, w, proxy
}

// workload appends small workloads (2 new players, 10 commands each) to a
// store every 100 ms until stop.
type workload struct {
	stop func() // stops and waits
	mu   sync.Mutex
	last eventstore.Position
	err  error
}

func steadyWorkload(t testing.TB, store eventstore.Store) *workload {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &workload{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			res, err := projectiontest.Workload{Seed: uint64(i), Prefix: fmt.Sprintf("w%d-", i), Players: 2, Commands: 10}.Run(ctx, store)
			w.mu.Lock()
			if err != nil && ctx.Err() == nil {
				w.err = err
			}
			if w.last.Less(res.Last) {
				w.last = res.Last
			}
			w.mu.Unlock()
			if err != nil {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	w.stop = sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(w.stop)
	return w
}

// finish stops the workload and appends one more small workload after it
// has stopped, whose last position it returns: a reader past it has seen
// every event, including those of an append that stop interrupted but
// that committed (on PostgreSQL the safe head may lag behind such an
// append while any transaction of the cluster is open, so the head alone
// does not tell).
func (w *workload) finish(t testing.TB, store eventstore.Store) eventstore.Position {
	t.Helper()
	w.stop()
	w.Last(t) // no error
	res, err := projectiontest.Workload{Seed: 99, Prefix: "end-", Players: 1, Commands: 10}.Run(context.Background(), store)
	if err != nil || res.Events == 0 {
		t.Fatalf("final workload: %d events, %v", res.Events, err)
	}
	return res.Last
}

// Last returns the position of the last append so far.
func (w *workload) Last(t testing.TB) eventstore.Position {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		t.Fatalf("workload: %v", w.err)
	}
	return w.last
}

// outages records what a Runner tells its faults.Observer.
type outages struct {
	mu       sync.Mutex
	transied int
	down     map[string]bool
}

func (o *outages) TransientError(string, faults.Kind) {
	o.mu.Lock()
	o.transied++
	o.mu.Unlock()
}

func (o *outages) Degraded(component string, d bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down == nil {
		o.down = map[string]bool{}
	}
	o.down[component] = d
}

// stillDown returns the components whose outage never ended.
func (o *outages) stillDown() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for c, d := range o.down {
		if d {
			out = append(out, c)
		}
	}
	return out
}

// healedLikeAReplay checks what every fault test ends with, once the
// workload has stopped: the projections of r are live at the head (none
// failed: waitCaughtUp fails on one), nothing was skipped, every event of
// the log was applied once, no outage is left open, and the read models
// equal, row by row, a replay of the whole log from position 0 (a rebuild
// of every projection into new tables).
func healedLikeAReplay(t *testing.T, r *Runner, b backend, last eventstore.Position, obs *outages) {
	t.Helper()
	ctx := context.Background()
	waitCaughtUp(t, r, last)
	var skipped int
	if err := b.db.QueryRow(ctx, `SELECT count(*) FROM projection_skipped_events`).Scan(&skipped); err != nil || skipped != 0 {
		t.Fatalf("%d events skipped (%v)", skipped, err)
	}
	events := int64(len(mustReadAll(t, b.store)))
	st, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.EventsApplied != events {
			t.Errorf("%s: %d events applied, the log has %d", s.Name, s.EventsApplied, events)
		}
	}
	if err := r.Ready(ctx); err != nil {
		t.Errorf("Ready after the faults: %v", err)
	}
	if down := obs.stillDown(); len(down) > 0 {
		t.Errorf("the observer still sees %v degraded", down)
	}
	live := map[string][]string{}
	for _, v := range allViews() {
		live[v] = dump(t, b.db, v)
	}
	for _, name := range r.Names() {
		gen, err := r.Rebuild(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.WaitRebuilt(ctx, name, gen, 20*time.Millisecond, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range allViews() {
		sameRows(t, v+" (live vs replayed from 0)", dump(t, b.db, v), live[v])
	}
	t.Logf("%d events; %d transient errors told to the observer", events, obs.transied)
}

// fault takes the database away from the projections for a while: a cut
// (connections closed, new ones refused) or a partition (connections held
// open, nothing forwarded either way).
type fault struct {
	partition bool
	duration  time.Duration
}

func (f fault) String() string {
	if f.partition {
		return "partition " + f.duration.String()
	}
	return "cut " + f.duration.String()
}

func blips(n int, f fault) []fault {
	out := make([]fault, n)
	for i := range out {
		out[i] = f
	}
	return out
}

// Under a steady workload, the database cut away from the projections, or
// partitioned, for 1 s in many rounds, for 15 s, for 60 s: after every
// round each projection comes back to live at the head by itself, none
// ever shows failed, nothing is skipped, and the read models equal a replay
// from zero. Three lanes run in parallel (wall time with -parallel 2: the
// 60-s lane beside the other two, ~80 s).
func TestProjectionsHealAfterDatabaseFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: outages of up to 60 s")
	}
	cut := func(d time.Duration) fault { return fault{duration: d} }
	partition := func(d time.Duration) fault { return fault{partition: true, duration: d} }
	for _, lane := range []struct {
		name   string
		faults []fault
	}{
		{"cut-60s", []fault{cut(60 * time.Second)}},
		{"1s-x15-cut-x5-partition", append(blips(15, cut(time.Second)), blips(5, partition(time.Second))...)},
		{"15s-cut-15s-partition", []fault{cut(15 * time.Second), partition(15 * time.Second)}},
	} {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			b, writer, proxy := proxiedPostgres(t)
			obs := &outages{}
			r := startRunner(t, b, Config{BatchSize: 50, Observer: obs})
			wl := steadyWorkload(t, writer)
			waitCaughtUp(t, r, wl.Last(t))
			slowest := map[string]time.Duration{}
			cutsDegraded := 0
			for round, f := range lane.faults {
				time.Sleep(200 * time.Millisecond) // traffic flows
				if f.partition {
					proxy.Partition()
				} else {
					proxy.Stop()
				}
				sawDegraded := false
				for end := time.Now().Add(f.duration); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
					if err := r.Ready(context.Background()); err != nil {
						if strings.HasPrefix(err.Error(), "projections failed:") {
							t.Fatalf("round %d (%s): %v", round, f, err)
						}
						sawDegraded = sawDegraded || strings.Contains(err.Error(), "degraded")
					}
				}
				if f.partition {
					proxy.Heal()
				} else {
					proxy.Start(t)
					if sawDegraded {
						cutsDegraded++
					}
				}
				healed := time.Now()
				waitCaughtUp(t, r, wl.Last(t))
				slowest[f.String()] = max(slowest[f.String()], time.Since(healed))
			}
			for _, f := range lane.faults {
				if !f.partition && cutsDegraded == 0 {
					t.Fatal("no cut ever showed a projection degraded: the fault did not reach them")
				}
			}
			last := wl.finish(t, writer)
			t.Logf("%d faults (%d cuts showed degraded); live at the head at most this long after the database came back: %v",
				len(lane.faults), cutsDegraded, slowest)
			healedLikeAReplay(t, r, b, last, obs)
		})
	}
}

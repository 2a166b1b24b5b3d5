package projections

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/projections/projectiontest"
	"github.com/taskqueue/taskqueue/query"
)

// flaky fails its first `left` batches that hold the event at bad with
// err, then applies everything; it counts the batches it was given.
type flaky struct {
	Projection
	bad     eventstore.Position
	err     error
	left    *atomic.Int64
	batches *atomic.Int64
	singles *atomic.Int64 // batches of one event (the runner isolating)
}

func (f flaky) Apply(ctx context.Context, tx Tx, t Tables, evs []eventstore.RecordedEvent) error {
	f.batches.Add(1)
	if len(evs) == 1 {
		f.singles.Add(1)
	}
	for _, e := range evs {
		if e.Position == f.bad && f.left.Add(-1) >= 0 {
			return f.err
		}
	}
	return f.Projection.Apply(ctx, tx, t, evs)
}

func newFlaky(p Projection, bad eventstore.Position, err error, times int64) flaky {
	f := flaky{Projection: p, bad: bad, err: err, left: new(atomic.Int64), batches: new(atomic.Int64), singles: new(atomic.Int64)}
	f.left.Store(times)
	return f
}

// workloadLog writes a workload to a fresh SQLite backend and returns it
// with its events.
func workloadLog(t *testing.T) (backend, projectiontest.Result, []eventstore.RecordedEvent) {
	t.Helper()
	b := openSQLite(t, "")
	res, err := (projectiontest.Workload{Seed: 3, Players: 5, Commands: 400}).Run(context.Background(), b.store)
	if err != nil {
		t.Fatal(err)
	}
	return b, res, mustReadAll(t, b.store)
}

// A projection's code refusing an event once (a one-off) is never recorded
// as a failure: the fresh attempt applies it, and the model is complete.
func TestOneRefusalIsNotAFailure(t *testing.T) {
	b, res, evs := workloadLog(t)
	f := newFlaky(PlayerProgress{}, evs[150].Position, errors.New("refused once"), 2) // the batch, then the event alone
	r := startRunner(t, b, Config{BatchSize: 64, RetryDelay: 10 * time.Millisecond, Projections: []Projection{f}})
	waitCaughtUp(t, r, res.Last)
	if f.left.Load() >= 0 {
		t.Fatal("the projection never refused the event: the test proves nothing")
	}
	s, _ := r.StatusOf(context.Background(), PlayerProgressName)
	if s.EventsApplied != int64(res.Events) || s.Failure != nil {
		t.Fatalf("%d events applied of %d, failure %+v", s.EventsApplied, res.Events, s.Failure)
	}
}

// A transient error (here: the database's disk is full, as a projection's
// statement would report it) is never a failure of the event: the batch is
// not taken apart event by event, the projection shows degraded with the
// error and since when, Ready names it, and it comes back by itself.
func TestTransientErrorDegradesAndHeals(t *testing.T) {
	b, res, evs := workloadLog(t)
	full := fmt.Errorf("upsert 12 rows into player_progress__v1: %w", faults.ErrStorageFull)
	f := newFlaky(PlayerProgress{}, evs[150].Position, full, 4)
	r := startRunner(t, b, Config{BatchSize: 64, RetryDelay: time.Hour, Projections: []Projection{f}})
	var seen Status
	waitForRunner(t, r, "degraded", func(ctx context.Context) (bool, error) {
		s, err := r.StatusOf(ctx, PlayerProgressName)
		if s.State == StateDegraded {
			seen = s
			return true, err
		}
		return false, err
	})
	if seen.Degraded == nil || !strings.Contains(seen.Degraded.Error, "storage is full") || seen.Degraded.Since.IsZero() || seen.Failure != nil {
		t.Fatalf("degraded status %+v", seen)
	}
	if qs := toQueryState(seen); qs.State != "degraded" || qs.Degraded == nil || qs.Degraded.Error != seen.Degraded.Error {
		t.Fatalf("admin status %+v", qs)
	}
	if err := r.Ready(context.Background()); err != nil && !strings.Contains(err.Error(), "player_progress since") {
		t.Fatalf("Ready while degraded = %v, want the projection named", err)
	} // (nil when the last attempt already succeeded)
	waitCaughtUp(t, r, res.Last)
	if f.left.Load() >= 0 {
		t.Fatalf("the projection refused %d times fewer than planned", f.left.Load()+1)
	}
	if n := f.singles.Load(); n > 0 {
		t.Fatalf("the runner applied %d single events: it isolated a batch that failed transiently", n)
	}
	s, _ := r.StatusOf(context.Background(), PlayerProgressName)
	if s.State != StateLive || s.Degraded != nil || s.EventsApplied != int64(res.Events) {
		t.Fatalf("after the outage: %+v", s)
	}
	if err := r.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after the outage: %v", err)
	}
}

// failedAt runs p (broken at evs[i] while broken is set) on b until it
// fails there.
func failedAt(t *testing.T, b backend, name string, p Projection) *Runner {
	t.Helper()
	r := startRunner(t, b, Config{BatchSize: 64, RetryDelay: 10 * time.Millisecond, Projections: []Projection{p}})
	waitForRunner(t, r, name+" failed", func(ctx context.Context) (bool, error) {
		s, err := r.StatusOf(ctx, name)
		return s.State == StateFailed, err
	})
	return r
}

// Skip refuses an event that applies now, and resumes the projection
// instead; nothing is skipped and the model is complete.
func TestSkipRefusesAnEventThatAppliesNow(t *testing.T) {
	b, res, evs := workloadLog(t)
	var broken atomic.Bool
	broken.Store(true)
	r := failedAt(t, b, QueuesName, failing{Queues{}, evs[150].Position, &broken})
	broken.Store(false) // the cause went away
	err := NewAdmin(r).Skip(context.Background(), QueuesName, evs[150].Position.String(), "ops")
	if !errors.Is(err, query.ErrConflict) || !errors.Is(err, ErrSkipRefused) || !strings.Contains(err.Error(), "applies now") {
		t.Fatalf("skip of an event that applies now: %v", err)
	}
	waitCaughtUp(t, r, res.Last)
	var n int
	if err := b.db.QueryRow(context.Background(), `SELECT count(*) FROM projection_skipped_events`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d skipped events recorded (%v)", n, err)
	}
	s, _ := r.StatusOf(context.Background(), QueuesName)
	if s.EventsApplied != int64(res.Events) {
		t.Fatalf("%d events applied, want %d", s.EventsApplied, res.Events)
	}
}

// Skip refuses when the failure's checkpoint moved (another runner applied
// the event): a conflict, not an internal error.
func TestSkipRefusesWhenTheCheckpointMoved(t *testing.T) {
	b, _, evs := workloadLog(t)
	var broken atomic.Bool
	broken.Store(true)
	r := failedAt(t, b, AnalyticsName, failing{Analytics{}, evs[99].Position, &broken})
	ctx := context.Background()
	// Another runner, with a fixed version of the code, moves on.
	err := b.db.InTx(ctx, func(tx Tx) error {
		_, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET seq_position = seq_position + 1 WHERE name = $1`, AnalyticsName)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = NewAdmin(r).Skip(ctx, AnalyticsName, evs[99].Position.String(), "ops")
	if !errors.Is(err, query.ErrConflict) || !strings.Contains(err.Error(), "checkpoint") {
		t.Fatalf("skip after the checkpoint moved: %v", err)
	}
}

// One Admin serves the projections of several runners (the read side's
// and the processor's): it lists them all and sends each request to the
// runner that runs the projection.
func TestAdminSpansRunners(t *testing.T) {
	b, res, evs := workloadLog(t)
	var broken atomic.Bool
	broken.Store(true)
	r1 := startRunner(t, b, Config{Projections: []Projection{Queues{}, PlayerProgress{}}})
	r2 := failedAt(t, b, AnalyticsName, failing{Analytics{}, evs[40].Position, &broken})
	a := NewAdmin(r1, nil, r2)
	ctx := context.Background()
	st, err := a.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range st {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{AnalyticsName, PlayerProgressName, QueuesName}) || st[0].State != "failed" {
		t.Fatalf("statuses %+v", st)
	}
	if s, err := a.Status(ctx, AnalyticsName); err != nil || s.Failure == nil || s.Failure.Position != evs[40].Position.String() {
		t.Fatalf("status of analytics: %+v, %v", s, err)
	}
	if _, err := a.Status(ctx, "nope"); !errors.Is(err, query.ErrNotFound) {
		t.Fatalf("status of unknown: %v", err)
	}
	if err := a.Retry(ctx, "nope"); !errors.Is(err, query.ErrNotFound) {
		t.Fatalf("retry of unknown: %v", err)
	}
	if err := a.Skip(ctx, AnalyticsName, evs[40].Position.String(), "ops"); err != nil {
		t.Fatalf("skip through the admin: %v", err)
	}
	waitCaughtUp(t, r2, res.Last)
	waitCaughtUp(t, r1, res.Last)
}

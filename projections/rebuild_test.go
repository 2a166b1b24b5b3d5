package projections

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/projections/projectiontest"
)

func eachDialect(t *testing.T, f func(t *testing.T, open func() backend)) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			f(t, func() backend {
				if dialect == "sqlite" {
					return openSQLite(t, "")
				}
				return openPostgres(t, "")
			})
		})
	}
}

func countRows(ctx context.Context, q Querier, table string) (int, error) {
	var n int
	err := q.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
	return n, err
}

// An operator's rebuild builds a new generation from position 0 while the
// old one serves; readers never see fewer rows than the full model; then the
// views switch, the rows are the same, and the old tables are gone.
func TestRebuildIsBlueGreen(t *testing.T) {
	eachDialect(t, func(t *testing.T, open func() backend) {
		ctx := context.Background()
		b := open()
		r := startRunner(t, b, Config{BatchSize: 100})
		res, err := (projectiontest.Workload{Seed: 5, Players: 12, Commands: 1000}).Run(ctx, b.store)
		if err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, r, res.Last)
		before := map[string][]string{}
		for _, v := range allViews() {
			before[v] = dump(t, b.db, v)
		}
		full := len(before["task_history"])

		// A reader that must never see a partial model.
		stop := make(chan struct{})
		var reads atomic.Int64
		var wg sync.WaitGroup
		var readErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				n, err := countRows(ctx, b.db, "task_history")
				if err != nil {
					readErr = err
					return
				}
				if n != full {
					readErr = errors.New("reader saw a half-built task_history")
					return
				}
				reads.Add(1)
			}
		}()

		gen, err := r.Rebuild(ctx, QueuesName)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(gen, "v1r") {
			t.Fatalf("rebuild of version 1 got generation %q", gen)
		}
		if again, err := r.Rebuild(ctx, QueuesName); !errors.Is(err, ErrRebuildInProgress) || again != gen {
			t.Fatalf("second rebuild: got %q, %v, want %q and ErrRebuildInProgress", again, err, gen)
		}
		if _, err := r.Rebuild(ctx, "nope"); !errors.Is(err, ErrUnknownProjection) {
			t.Fatalf("rebuild of unknown projection: got %v", err)
		}
		waitForRunner(t, r, "the switch to "+gen, func(ctx context.Context) (bool, error) {
			s, err := r.StatusOf(ctx, QueuesName)
			return s.Generation == gen && s.Rebuild == nil && s.State == StateLive, err
		})
		close(stop)
		wg.Wait()
		if readErr != nil {
			t.Fatal(readErr)
		}
		if reads.Load() == 0 {
			t.Fatal("the reader never read")
		}
		for _, v := range allViews() {
			sameRows(t, v+" after rebuild", before[v], dump(t, b.db, v))
		}
		for _, tbl := range []string{"queue_status__v1", "task_history__v1"} {
			if ok, err := tableExists(ctx, b.db, tbl); err != nil || ok {
				t.Fatalf("old table %s still exists (%v)", tbl, err)
			}
		}
		// The new generation keeps following the log.
		res2, err := (projectiontest.Workload{Seed: 6, Prefix: "x", Players: 3, Commands: 100}).Run(ctx, b.store)
		if err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, r, res2.Last)
		if n, _ := countRows(ctx, b.db, "queue_status"); n != len(before["queue_status"])+3 {
			t.Fatalf("queue_status has %d rows after 3 new players, want %d", n, len(before["queue_status"])+3)
		}
	})
}

// The switch of a rebuild retires the old generation while its worker may
// be in the middle of a batch: it holds the old tables and ends by
// advancing its checkpoint. The switch waits for that batch instead of
// taking the checkpoint rows first (PostgreSQL then broke the deadlock
// after a second by failing one side).
func TestSwitchWaitsForTheRetiredGenerationsBatch(t *testing.T) {
	ctx := context.Background()
	b, r := liveOnPostgres(t, 7)
	var gen string
	err := b.db.InTx(ctx, func(tx Tx) error {
		// A batch of the old generation: it wrote its table ...
		var pid int
		if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE queue_status__v1 SET updated_at = updated_at`); err != nil {
			return err
		}
		// ... when the rebuild reaches its switch, which waits for it ...
		var err error
		if gen, err = r.Rebuild(ctx, QueuesName); err != nil {
			return err
		}
		for end := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
			var waiting int
			if err := b.db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, pid).Scan(&waiting); err != nil {
				return err
			}
			if waiting > 0 {
				break
			}
			if time.Now().After(end) {
				return errors.New("the switch never waited for the batch")
			}
		}
		// ... and the batch ends by advancing its checkpoint, at once.
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '500ms'`); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE projection_checkpoints SET updated_at = now() WHERE name = $1 AND generation = 'v1'`, QueuesName)
		return err
	})
	if err != nil {
		t.Fatalf("the old generation's batch could not end while the switch waited: %v", err)
	}
	waitForRunner(t, r, "the switch to "+gen, func(ctx context.Context) (bool, error) {
		s, err := r.StatusOf(ctx, QueuesName)
		return s.Generation == gen && s.Rebuild == nil && s.State == StateLive, err
	})
}

// liveOnPostgres starts a runner (batches of 100) on a PostgreSQL
// backend of its own and returns once it has applied a workload of 100
// commands by 3 players (seed seed).
func liveOnPostgres(t *testing.T, seed uint64) (backend, *Runner) {
	t.Helper()
	b := openPostgres(t, "")
	r := startRunner(t, b, Config{BatchSize: 100})
	res, err := (projectiontest.Workload{Seed: seed, Players: 3, Commands: 100}).Run(context.Background(), b.store)
	if err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, r, res.Last)
	return b, r
}

// A worker of a generation that a rebuild retired meanwhile (in another
// process: a replay, another instance) finds its tables gone at its next
// batch. It stops as superseded, quietly: the batch's failure is not the
// events', so nothing is isolated or logged as a refused batch.
func TestRetiredGenerationsBatchIsSuperseded(t *testing.T) {
	ctx := context.Background()
	b, r := liveOnPostgres(t, 11)
	old, err := r.StatusOf(ctx, QueuesName)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := r.Rebuild(ctx, QueuesName)
	if err != nil {
		t.Fatal(err)
	}
	waitForRunner(t, r, "the switch to "+gen, func(ctx context.Context) (bool, error) {
		s, err := r.StatusOf(ctx, QueuesName)
		return s.Generation == gen && s.Rebuild == nil && s.State == StateLive, err
	})
	if ok, _ := tableExists(ctx, b.db, "queue_status__"+old.Generation); ok {
		t.Fatalf("the retired generation's table queue_status__%s is still there", old.Generation)
	}

	// Another runner's worker of the retired generation, where it stood.
	var logged strings.Builder
	stale, err := NewRunner(Config{Store: b.store, DB: b.db, Projections: []Projection{Queues{}},
		Logger: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	w := stale.newWorker(stale.projs[QueuesName], checkpoint{name: QueuesName, generation: old.Generation,
		version: old.Version, active: true, position: old.Position})
	more, err := (projectiontest.Workload{Seed: 12, Players: 2, Prefix: "later-", Commands: 10}).Run(ctx, b.store)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := b.store.ReadAll(ctx, old.Position, eventstore.Filter{}, 100)
	if err != nil || len(evs) == 0 {
		t.Fatalf("read the events after %s: %d, %v (the workload ended at %s)", old.Position, len(evs), err, more.Last)
	}
	if err := w.apply(ctx, evs, evs[len(evs)-1].Position); !errors.Is(err, errSuperseded) {
		t.Fatalf("the retired generation's batch: %v, want errSuperseded", err)
	}
	if strings.Contains(logged.String(), "level=WARN") || strings.Contains(logged.String(), "level=ERROR") {
		t.Fatalf("the retired generation's batch was logged as a failure:\n%s", logged.String())
	}
	if f := w.failure(); f != nil {
		t.Fatalf("the retired generation's worker recorded a failure: %+v", f)
	}
}

type bumped struct {
	Projection
	v int
}

func (b bumped) Version() int { return b.v }

// Raising a projection's version rebuilds it into generation v<version> at
// start, with the same result.
func TestVersionBumpRebuilds(t *testing.T) {
	eachDialect(t, func(t *testing.T, open func() backend) {
		ctx := context.Background()
		b := open()
		res, err := (projectiontest.Workload{Seed: 9, Players: 8, Commands: 500}).Run(ctx, b.store)
		if err != nil {
			t.Fatal(err)
		}
		r1, cancel := runFor(t, b, Config{Projections: []Projection{PlayerProgress{}}})
		waitCaughtUp(t, r1, res.Last)
		before := dump(t, b.db, "player_progress")
		cancel()

		r2 := startRunner(t, b, Config{Projections: []Projection{bumped{PlayerProgress{}, 2}}})
		waitForRunner(t, r2, "generation v2 serving", func(ctx context.Context) (bool, error) {
			s, err := r2.StatusOf(ctx, PlayerProgressName)
			return s.Generation == "v2" && s.Version == 2 && s.Rebuild == nil && s.State == StateLive, err
		})
		sameRows(t, "player_progress v2", before, dump(t, b.db, "player_progress"))
		if ok, _ := tableExists(ctx, b.db, "player_progress__v1"); ok {
			t.Fatal("player_progress__v1 survived the switch")
		}
	})
}

// runFor runs a Runner until the returned cancel is called.
func runFor(t testing.TB, b backend, cfg Config) (*Runner, func()) {
	cfg.Store, cfg.DB = b.store, b.db
	r, err := NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return r, sync.OnceFunc(stop)
}

// failing fails on one event while broken is set.
type failing struct {
	Projection
	bad    eventstore.Position
	broken *atomic.Bool
}

func (f failing) Apply(ctx context.Context, tx Tx, t Tables, evs []eventstore.RecordedEvent) error {
	for _, e := range evs {
		if e.Position == f.bad && f.broken.Load() {
			return errors.New("boom")
		}
	}
	return f.Projection.Apply(ctx, tx, t, evs)
}

// A failing event stops its projection in state failed, with the position
// and the error visible, while the others go on; Retry after a fix resumes
// it, and Skip moves past the event and records the skip.
func TestFailedEventStopsProjectionUntilRetryOrSkip(t *testing.T) {
	eachDialect(t, func(t *testing.T, open func() backend) {
		ctx := context.Background()
		b := open()
		res, err := (projectiontest.Workload{Seed: 3, Players: 5, Commands: 400}).Run(ctx, b.store)
		if err != nil {
			t.Fatal(err)
		}
		evs := firstEvents(t, b.store, 200)
		bad := evs[150]
		var broken atomic.Bool
		broken.Store(true)
		r := startRunner(t, b, Config{BatchSize: 64, Projections: []Projection{
			failing{Queues{}, bad.Position, &broken}, PlayerProgress{}, Analytics{},
		}})
		waitForRunner(t, r, "queues failed", func(ctx context.Context) (bool, error) {
			s, err := r.StatusOf(ctx, QueuesName)
			return s.State == StateFailed, err
		})
		s, _ := r.StatusOf(ctx, QueuesName)
		if s.Failure.Position != bad.Position || s.Failure.EventID != bad.ID.String() || !strings.Contains(s.Failure.Error, "boom") {
			t.Fatalf("failure %+v, want event %s at %s", s.Failure, bad.ID, bad.Position)
		}
		if s.Position != evs[149].Position {
			t.Fatalf("failed projection at %s, want the event before the failing one, %s", s.Position, evs[149].Position)
		}
		if err := r.Ready(ctx); err == nil || !strings.Contains(err.Error(), QueuesName) {
			t.Fatalf("Ready = %v, want the failed projection named", err)
		}
		waitForRunner(t, r, "the other projections at the head", func(ctx context.Context) (bool, error) {
			p, err := r.StatusOf(ctx, PlayerProgressName)
			return p.State == StateLive && !p.Position.Less(p.Head), err
		})
		if err := r.Skip(ctx, QueuesName, evs[10].Position, "ops"); !errors.Is(err, ErrNotFailed) {
			t.Fatalf("skip of an event it did not fail on: %v", err)
		}

		// Fix, retry: resumes and applies everything, the bad event included.
		broken.Store(false)
		if err := r.Retry(QueuesName); err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, r, res.Last)
		s, _ = r.StatusOf(ctx, QueuesName)
		if s.EventsApplied != int64(res.Events) {
			t.Fatalf("after retry %d events applied, want %d", s.EventsApplied, res.Events)
		}

		// Now a projection that fails for good, and an operator's skip.
		b2 := open()
		res2, err := (projectiontest.Workload{Seed: 3, Players: 5, Commands: 400}).Run(ctx, b2.store)
		if err != nil {
			t.Fatal(err)
		}
		evs2 := firstEvents(t, b2.store, 200)
		var always atomic.Bool
		always.Store(true)
		r2 := startRunner(t, b2, Config{BatchSize: 64, Projections: []Projection{failing{Analytics{}, evs2[99].Position, &always}}})
		waitForRunner(t, r2, "analytics failed", func(ctx context.Context) (bool, error) {
			s, err := r2.StatusOf(ctx, AnalyticsName)
			return s.State == StateFailed, err
		})
		if err := r2.Skip(ctx, AnalyticsName, evs2[99].Position, "ops"); err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, r2, res2.Last)
		var n int
		var by string
		if err := b2.db.QueryRow(ctx, `SELECT count(*), max(skipped_by) FROM projection_skipped_events WHERE name = $1 AND event_id = $2`,
			AnalyticsName, evs2[99].ID.String()).Scan(&n, &by); err != nil || n != 1 || by != "ops" {
			t.Fatalf("skipped_events: %d rows by %q (%v)", n, by, err)
		}
		s2, _ := r2.StatusOf(ctx, AnalyticsName)
		if s2.EventsApplied != int64(len(mustReadAll(t, b2.store)))-1 {
			t.Fatalf("after skip %d events applied, want all but one", s2.EventsApplied)
		}
	})
}

// mustReadAll reads the whole log as committed when it is called. On
// PostgreSQL ReadAll stops at the log's safe prefix, which a transaction
// open anywhere on the server (another package's test) holds back: it
// reads on until it has the committed head.
func mustReadAll(t *testing.T, s eventstore.Store) []eventstore.RecordedEvent {
	t.Helper()
	ctx := context.Background()
	var head eventstore.Position
	if c, ok := s.(interface {
		CommittedHead(context.Context) (eventstore.Position, error)
	}); ok {
		var err error
		if head, err = c.CommittedHead(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var out []eventstore.RecordedEvent
	pos := eventstore.Start
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs, err := s.ReadAll(ctx, pos, eventstore.Filter{}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			if !pos.Less(head) {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("the log read stops at %s, before its committed head %s", pos, head)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		out = append(out, evs...)
		pos = evs[len(evs)-1].Position
	}
}

func TestFormatProgress(t *testing.T) {
	got := FormatProgress(Progress{Done: 250, Total: 1000, EventsPerSecond: 50, ETA: 15 * time.Second}, 20)
	want := "[#####---------------]  25.0%  250/1000 events  50 ev/s  ETA 15s"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

// Replay (the CLI's rebuild) switches the projection to a new generation
// and reports it.
func TestReplayCommand(t *testing.T) {
	ctx := context.Background()
	b := openSQLite(t, "")
	r := startRunner(t, b, Config{})
	res, err := (projectiontest.Workload{Seed: 12, Players: 5, Commands: 300}).Run(ctx, b.store)
	if err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, r, res.Last)
	var out strings.Builder
	if err := Replay(ctx, Config{Store: b.store, DB: b.db}, PlayerProgressName, &out, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "switched player_progress to generation v1r") || !strings.Contains(out.String(), "100.0%") {
		t.Fatalf("replay printed %q", out.String())
	}
	if err := Replay(ctx, Config{Store: b.store, DB: b.db}, "nope", &out, 0); !errors.Is(err, ErrUnknownProjection) {
		t.Fatalf("replay of unknown projection: %v", err)
	}
}

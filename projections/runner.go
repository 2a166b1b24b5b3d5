package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/migrations"
)

// State is what a projection's worker is doing. The set is closed.
type State string

const (
	StateStarting   State = "starting"
	StateCatchingUp State = "catching-up"
	StateLive       State = "live"
	StateRebuilding State = "rebuilding"
	// StateDegraded: the infrastructure failed (the database or the log
	// could not be reached, the disk is full); the projection retries by
	// itself, with backoff, from its checkpoint, until it is back.
	StateDegraded State = "degraded"
	// StateFailed: the projection's own code refused an event twice, on
	// two attempts; it waits for Retry or Skip.
	StateFailed  State = "failed"
	StateStopped State = "stopped"
)

// States is the closed set of State, in a fixed order.
var States = []State{StateStarting, StateCatchingUp, StateLive, StateRebuilding, StateDegraded, StateFailed, StateStopped}

// Config configures a Runner.
type Config struct {
	// Store is the event log. Required.
	Store eventstore.Store
	// DB holds the read models and the checkpoints. Required. On SQLite it
	// must be the event store's single writer (see NewSQLiteStoreDB).
	DB DB
	// Projections to run. Required; names must be unique.
	Projections []Projection
	// BatchSize is the most events applied in one transaction while
	// following the log. Default 1000. A catch-up a full batch behind
	// applies larger batches on PostgreSQL (catchUpBatch).
	BatchSize int
	// SmallCatchUp keeps every catch-up batch to BatchSize events, never a
	// bulk build's page: for projections whose readers wait on each commit
	// (the processor's schedule, whose due loop claims only committed rows),
	// where the first rows committing soon matters more than the catch-up's
	// total time.
	SmallCatchUp bool
	// RetryDelay is how long a projection waits before it tries an event
	// that its code refused once again (a refusal becomes a failure only
	// when the fresh attempt fails too), and before it starts again after
	// an error that is neither transient nor an event's. Default 1 s.
	// Transient errors (faults.Transient) back off by themselves
	// (faults.Outage: 100 ms doubling to 5 s, with jitter).
	RetryDelay time.Duration
	// Observer is told of the projections' transient errors and outages
	// (component "projection <name>"); may be nil. metrics.Registry
	// implements it.
	Observer faults.Observer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock of status timestamps and lag; default time.Now.
	Now func() time.Time

	// beforeCommit, when set (by tests), runs inside every batch's
	// transaction after the read-model writes and the checkpoint, just
	// before the commit.
	beforeCommit func(projection string)
	// bulkChunk, when set (by tests), is the page size of bulk builds
	// instead of defaultBulkChunk.
	bulkChunk int
	// beforeBulk, when set (by tests), runs as a bulk build begins,
	// before it empties its tables.
	beforeBulk func(projection string)
	// afterBulkChunk, when set (by tests), runs after each commit of a
	// bulk build's pages; an error stops the build there.
	afterBulkChunk func(projection string) error
	// bulkBuilt, when set (by tests), is told of every bulk build that
	// ended, with the events it applied.
	bulkBuilt func(projection string, events int64)
	// paceWait, when set (by tests), replaces defaultPaceWait.
	paceWait time.Duration
}

func (c *Config) setDefaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.bulkChunk <= 0 {
		c.bulkChunk = defaultBulkChunk
	}
	if c.paceWait <= 0 {
		c.paceWait = defaultPaceWait
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("projections: Config.Store is required"))
	}
	if c.DB == nil {
		errs = append(errs, errors.New("projections: Config.DB is required"))
	}
	if len(c.Projections) == 0 {
		errs = append(errs, errors.New("projections: Config.Projections is empty"))
	}
	seen := map[string]bool{}
	for _, p := range c.Projections {
		if err := validateProjection(p); err != nil {
			errs = append(errs, err)
		}
		if seen[p.Name()] {
			errs = append(errs, fmt.Errorf("projections: two projections are named %q", p.Name()))
		}
		seen[p.Name()] = true
	}
	if c.BatchSize > 100000 {
		errs = append(errs, fmt.Errorf("projections: BatchSize %d is over 100000", c.BatchSize))
	}
	return errors.Join(errs...)
}

// Runner keeps projections up to date with the event log: for each, it
// catches up from the checkpoint in batches, then follows the log live; a
// batch's read-model writes and the checkpoint commit in one transaction.
// It also runs blue-green rebuilds and reports status. Safe for concurrent
// use. Several runners (processes) may run the same projections on the same
// database: the checkpoint compare-and-set lets exactly one of them commit
// each batch.
type Runner struct {
	cfg   Config
	projs map[string]*proj
	order []string

	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced after every commit

	cache pageCache
	scan  bulkScan
}

// proj is the runner's state for one projection.
type proj struct {
	p      Projection
	reload chan struct{} // a rebuild or a retry was requested: restart the workers
	// outage tracks the transient failures of the projection's
	// generations: it outlives the workers, which start again after each.
	outage *faults.Outage

	mu      sync.Mutex
	workers map[string]*worker // by generation
	// suspect is, by generation, the event the projection's code refused
	// once: it becomes a failure only if the fresh attempt fails too.
	suspect map[string]eventstore.Position
	// noBulk marks, by generation, the builds whose bulk build the
	// projection's code refused (bulk.go): they build batch by batch.
	noBulk map[string]bool
}

// NewRunner checks cfg and returns a Runner; call Run to start it.
func NewRunner(cfg Config) (*Runner, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, projs: map[string]*proj{}, notify: make(chan struct{})}
	for _, p := range cfg.Projections {
		r.projs[p.Name()] = &proj{
			p: p, reload: make(chan struct{}, 1), workers: map[string]*worker{}, suspect: map[string]eventstore.Position{}, noBulk: map[string]bool{},
			outage: faults.NewOutage(faults.OutageConfig{Component: "projection " + p.Name(), Logger: cfg.Logger, Observer: cfg.Observer}),
		}
		r.order = append(r.order, p.Name())
	}
	sort.Strings(r.order)
	return r, nil
}

// Run runs every projection until ctx ends, then returns nil. An error of one
// projection never stops the others: it shows in Status.
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, name := range r.order {
		pr := r.projs[name]
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.supervise(ctx, pr)
		}()
	}
	wg.Wait()
	return nil
}

// Committed returns a channel that is closed after the next commit of any
// projection: a reader waiting for its own write to show re-reads then.
func (r *Runner) Committed() <-chan struct{} {
	r.notifyMu.Lock()
	defer r.notifyMu.Unlock()
	return r.notify
}

func (r *Runner) committed() {
	r.notifyMu.Lock()
	close(r.notify)
	r.notify = make(chan struct{})
	r.notifyMu.Unlock()
}

// supervise runs a projection's generations until ctx ends, starting over
// (reloading checkpoints) whenever a rebuild switched or was requested,
// another runner took over, or something failed. After a transient error
// (faults.Transient: the database or the log could not be reached, the
// disk is full) it backs off with the projection's Outage, which shows the
// projection degraded, and starts again from the checkpoints in the
// database: a commit whose acknowledgement was lost may have committed.
func (r *Runner) supervise(ctx context.Context, pr *proj) {
	log := r.cfg.Logger.With("projection", pr.p.Name())
	for ctx.Err() == nil {
		err := r.runOnce(ctx, pr)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		switch {
		case err == nil, errors.Is(err, errSuperseded), errors.Is(err, errSwitched), errors.Is(err, errReload):
			continue
		case faults.Transient(err):
			wait = pr.outage.Failed(err)
		default:
			log.Error("projection stopped; retrying", "err", err)
			wait = r.cfg.RetryDelay
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-pr.reload:
		}
		t.Stop()
	}
}

var (
	errSwitched = errors.New("rebuild switched generations")
	errReload   = errors.New("reload requested")
)

// runOnce loads the projection's checkpoints, starts a worker for the active
// generation and one for a generation being built, and returns when one of
// them needs the whole set restarted.
func (r *Runner) runOnce(ctx context.Context, pr *proj) error {
	cps, err := r.ensure(ctx, pr.p)
	if err != nil {
		return err
	}
	var active, build *checkpoint
	for i := range cps {
		if cps[i].active {
			active = &cps[i]
		} else {
			build = &cps[i] // the latest inactive one
		}
	}
	if active == nil {
		return fmt.Errorf("projection %s has no active generation", pr.p.Name())
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		active bool
		err    error
	}
	done := make(chan result, 2)
	aw := r.newWorker(pr, *active)
	actx, acancel := context.WithCancel(wctx)
	defer acancel()
	var stoppedForSwitch atomic.Bool
	go func() { done <- result{true, aw.run(actx, nil)} }()
	running := 1
	var bw *worker
	if build != nil {
		bw = r.newWorker(pr, *build)
		running++
		stopActive := func() {
			stoppedForSwitch.Store(true)
			acancel()
			<-aw.done
		}
		go func() { done <- result{false, bw.run(wctx, stopActive)} }()
	}
	defer func() {
		pr.mu.Lock()
		delete(pr.workers, aw.generation)
		if bw != nil {
			delete(pr.workers, bw.generation)
		}
		pr.mu.Unlock()
	}()
	var first error
wait:
	for running > 0 {
		select {
		case res := <-done:
			running--
			if res.active && stoppedForSwitch.Load() {
				continue // the build stopped it to switch; wait for the build
			}
			first = res.err
			break wait
		case <-pr.reload:
			first = errReload
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	cancel()
	for ; running > 0; running-- {
		if res := <-done; first == nil {
			first = res.err
		}
	}
	if first == nil || errors.Is(first, context.Canceled) {
		return ctx.Err()
	}
	return first
}

// ensure creates the projection's first checkpoint (generation v1, whose
// tables a migration created) and, when the code's version is newer than the
// active generation's and no build is under way, starts a build.
func (r *Runner) ensure(ctx context.Context, p Projection) ([]checkpoint, error) {
	cps, err := loadCheckpoints(ctx, r.cfg.DB, p.Name())
	if err != nil {
		return nil, err
	}
	if len(cps) == 0 {
		err := r.cfg.DB.InTx(ctx, func(tx Tx) error {
			return insertCheckpoint(ctx, tx, checkpoint{name: p.Name(), generation: "v1", version: 1, active: true}, r.cfg.Now())
		})
		if err != nil && !isUniqueViolation(err) {
			return nil, fmt.Errorf("start projection %s: %w", p.Name(), err)
		}
		return r.ensure(ctx, p)
	}
	building := false
	for _, c := range cps {
		if c.active && c.version >= p.Version() {
			return cps, nil
		}
		building = building || !c.active
	}
	if building {
		return cps, nil
	}
	if _, err := r.startBuild(ctx, p, cps); err != nil && !errors.Is(err, ErrRebuildInProgress) {
		return nil, err
	}
	return loadCheckpoints(ctx, r.cfg.DB, p.Name())
}

// Rebuild starts a blue-green rebuild of the named projection: a new
// generation of its tables is built from position 0 while the active one
// keeps serving; when it has caught up, the views switch to it in one
// transaction and the old tables are dropped. It returns the new
// generation's name at once; Status shows the progress. The rebuild is
// resumed after a restart. When a rebuild is already under way it returns
// that generation's name with an error matching ErrRebuildInProgress, so a
// caller may wait for it instead (WaitRebuilt).
func (r *Runner) Rebuild(ctx context.Context, name string) (string, error) {
	pr, ok := r.projs[name]
	if !ok {
		return "", fmt.Errorf("rebuild %q: %w", name, ErrUnknownProjection)
	}
	cps, err := r.ensure(ctx, pr.p)
	if err != nil {
		return "", fmt.Errorf("rebuild %s: %w", name, err)
	}
	gen, err := r.startBuild(ctx, pr.p, cps)
	if err != nil {
		if errors.Is(err, ErrRebuildInProgress) && gen != "" && !pr.hasWorker(gen) {
			// Begun by another runner that is gone (a replay killed
			// midway): this runner builds it from its checkpoint.
			pr.poke()
		}
		return gen, err
	}
	pr.poke()
	return gen, nil
}

// poke asks the supervisor to reload the checkpoints and restart the workers.
func (pr *proj) poke() {
	select {
	case pr.reload <- struct{}{}:
	default:
	}
}

// hasWorker reports whether a worker of this runner runs generation gen.
func (pr *proj) hasWorker(gen string) bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	_, ok := pr.workers[gen]
	return ok
}

// startBuild creates the tables and the inactive checkpoint of a new
// generation, in one transaction.
func (r *Runner) startBuild(ctx context.Context, p Projection, cps []checkpoint) (string, error) {
	var active *checkpoint
	for i := range cps {
		if !cps[i].active {
			return cps[i].generation, fmt.Errorf("rebuild %s: %w (generation %s)", p.Name(), ErrRebuildInProgress, cps[i].generation)
		}
		active = &cps[i]
	}
	if active == nil {
		return "", fmt.Errorf("rebuild %s: no active generation", p.Name())
	}
	now := r.cfg.Now()
	gen := newGenerationName(p.Version(), cps, now)
	err := r.cfg.DB.InTx(ctx, func(tx Tx) error {
		for _, t := range p.Tables() {
			to := physical(t, gen)
			exists, err := tableExists(ctx, tx, to)
			if err != nil {
				return err
			}
			if exists {
				// Created by a migration for a new version, or left by an
				// aborted build: start it empty.
				if _, err := tx.Exec(ctx, "DELETE FROM "+to); err != nil {
					return fmt.Errorf("empty %s: %w", to, err)
				}
				continue
			}
			if err := cloneTable(ctx, tx, physical(t, active.generation), to); err != nil {
				return err
			}
		}
		return insertCheckpoint(ctx, tx, checkpoint{name: p.Name(), generation: gen, version: p.Version()}, now)
	})
	if err != nil {
		if isUniqueViolation(err) {
			return gen, fmt.Errorf("rebuild %s: %w", p.Name(), ErrRebuildInProgress)
		}
		return "", fmt.Errorf("rebuild %s into generation %s: %w", p.Name(), gen, err)
	}
	r.cfg.Logger.Info("projection rebuild started", "projection", p.Name(), "generation", gen, "version", p.Version())
	return gen, nil
}

// switchTo makes generation gen of p the active one: the views select from
// its tables, the old generation's checkpoint and tables are gone. One
// transaction: readers see the old model or the new one, never a mix.
func (r *Runner) switchTo(ctx context.Context, p Projection, gen string, at eventstore.Position) error {
	return r.cfg.DB.InTx(ctx, func(tx Tx) error {
		// Still ours, still where we left it.
		if err := advanceCheckpoint(ctx, tx, p.Name(), gen, at, at, 0, r.cfg.Now()); err != nil {
			return err
		}
		cps, err := loadCheckpoints(ctx, tx, p.Name())
		if err != nil {
			return err
		}
		// Locks in the order readers and workers take them: the views
		// (a reader locks a view, then its table), the retired tables,
		// then their checkpoints (a worker's batch holds its tables and
		// ends by advancing its checkpoint).
		for _, t := range p.Tables() {
			if err := pointView(ctx, tx, t, physical(t, gen)); err != nil {
				return err
			}
		}
		if err := lockRetired(ctx, tx, p, gen, cps); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET active = (generation = $1) WHERE name = $2`, gen, p.Name()); err != nil {
			return fmt.Errorf("activate %s/%s: %w", p.Name(), gen, err)
		}
		for _, c := range cps {
			if c.generation == gen {
				continue
			}
			if _, err := tx.Exec(ctx, `DELETE FROM projection_checkpoints WHERE name = $1 AND generation = $2`, p.Name(), c.generation); err != nil {
				return fmt.Errorf("retire %s/%s: %w", p.Name(), c.generation, err)
			}
			for _, t := range p.Tables() {
				if err := dropTable(ctx, tx, physical(t, c.generation)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// lockRetired locks the tables of the generations that switchTo retires
// before it touches their checkpoints (PostgreSQL). A retired generation's
// worker may be in the middle of a batch, which holds its tables and ends
// by advancing its checkpoint: locking the checkpoint rows first (the
// UPDATE of active) and the tables then (DROP TABLE) waited for that batch
// while the batch waited for its row, a deadlock PostgreSQL broke after a
// second by failing one of the two (the fault suite's rebuilds met it).
// Called once the views are locked: a reader takes a view, then its table.
func lockRetired(ctx context.Context, tx Tx, p Projection, gen string, cps []checkpoint) error {
	if tx.Dialect() != migrations.Postgres {
		return nil // SQLite: one writer at a time
	}
	var tables []string
	for _, c := range cps {
		if c.generation == gen {
			continue
		}
		for _, t := range p.Tables() {
			tables = append(tables, physical(t, c.generation))
		}
	}
	if len(tables) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+strings.Join(tables, ", ")+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		return fmt.Errorf("lock the retired tables of %s: %w", p.Name(), err)
	}
	return nil
}

// Retry restarts a failed projection from its checkpoint (after the cause
// was fixed), or ends the backoff of a degraded one at once. It returns
// ErrUnknownProjection for an unknown name.
func (r *Runner) Retry(name string) error {
	pr, ok := r.projs[name]
	if !ok {
		return fmt.Errorf("retry %q: %w", name, ErrUnknownProjection)
	}
	if _, _, down := pr.outage.Down(); down {
		select {
		case pr.reload <- struct{}{}:
		default:
		}
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for _, w := range pr.workers {
		w.wakeUp()
	}
	return nil
}

// ErrSkipRefused is returned by Skip when skipping the event could lose
// data: the event applies now (the projection is resumed instead), or the
// checkpoint is no longer where the failure left it.
var ErrSkipRefused = errors.New("skip refused")

// errDryRun rolls back the transaction of Skip's dry run.
var errDryRun = errors.New("dry run")

// Skip moves a failed projection past the event it failed on (at position
// pos) without applying it, records the skip in projection_skipped_events
// with who asked, and resumes the projection. It returns ErrNotFailed when
// the projection is not failed at pos.
//
// Skipping is safe only for an event the projection's code refuses for
// good: a projection fails only on a refusal (never on a transient error,
// see faults), confirmed by a fresh attempt, and Skip first applies the
// event again in a transaction that it rolls back (a dry run). When the
// event applies now, Skip resumes the projection instead and returns
// ErrSkipRefused saying so; when the checkpoint moved (another runner
// applied it), ErrSkipRefused too. When the dry run cannot tell (the
// database is unavailable), Skip returns that transient error and skips
// nothing.
func (r *Runner) Skip(ctx context.Context, name string, pos eventstore.Position, by string) error {
	pr, ok := r.projs[name]
	if !ok {
		return fmt.Errorf("skip in %q: %w", name, ErrUnknownProjection)
	}
	pr.mu.Lock()
	var w *worker
	for _, x := range pr.workers {
		if f := x.failure(); f != nil && f.Position == pos {
			w = x
		}
	}
	pr.mu.Unlock()
	if w == nil {
		return fmt.Errorf("skip event at %s in %s: %w", pos, name, ErrNotFailed)
	}
	f := w.failure()
	if err := r.stillFails(ctx, pr, w, f); err != nil {
		return fmt.Errorf("skip event at %s in %s: %w", pos, name, err)
	}
	err := r.cfg.DB.InTx(ctx, func(tx Tx) error {
		if err := advanceCheckpoint(ctx, tx, name, w.generation, f.From, f.Position, 0, r.cfg.Now()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO projection_skipped_events
			(name, generation, commit_position, seq_position, event_id, event_type, stream_id, error, skipped_by, skipped_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			name, w.generation, int64(pos.Commit), int64(pos.Seq), f.EventID, f.EventType, f.Stream, f.Error, by, r.cfg.Now())
		return err
	})
	if errors.Is(err, errSuperseded) {
		err = fmt.Errorf("%w: the checkpoint of generation %s moved (another runner applied the event?); "+
			"read the status again", ErrSkipRefused, w.generation)
	}
	if err != nil {
		return fmt.Errorf("skip event at %s in %s: %w", pos, name, err)
	}
	r.cfg.Logger.Warn("projection skipped an event", "projection", name, "position", pos.String(), "event", f.EventID, "by", by)
	w.wakeUp()
	return nil
}

// stillFails applies the failed event again after the failure's checkpoint
// in a transaction that it rolls back, and returns nil only when the
// projection's code refuses it again. When the event applies, it resumes
// the worker and returns ErrSkipRefused.
func (r *Runner) stillFails(ctx context.Context, pr *proj, w *worker, f *Failure) error {
	evs, err := r.cfg.Store.ReadAll(ctx, f.From, pr.p.Filter(), 1)
	if err != nil {
		return fmt.Errorf("read the event again: %w", err)
	}
	if len(evs) == 0 || evs[0].Position != f.Position {
		return fmt.Errorf("%w: the event after the checkpoint %s is not the failed one", ErrSkipRefused, f.From)
	}
	err = r.cfg.DB.InTx(ctx, func(tx Tx) error {
		if err := advanceCheckpoint(ctx, tx, pr.p.Name(), w.generation, f.From, f.Position, 1, r.cfg.Now()); err != nil {
			return err
		}
		if err := pr.p.Apply(ctx, tx, w.tables, evs); err != nil {
			return applyError{err}
		}
		return errDryRun
	})
	var refusal applyError
	switch {
	case errors.Is(err, errDryRun):
		w.wakeUp()
		return fmt.Errorf("%w: the event applies now, so the projection was resumed instead of skipping it", ErrSkipRefused)
	case errors.Is(err, errSuperseded):
		return fmt.Errorf("%w: the checkpoint of generation %s moved (another runner applied the event?); "+
			"read the status again", ErrSkipRefused, w.generation)
	case errors.As(err, &refusal) && !faults.Transient(refusal.err):
		return nil // refused again, for good
	}
	return fmt.Errorf("apply the event again: %w", err)
}

// applyError is an error of a projection's Apply, told apart from the
// runner's own statements around it.
type applyError struct{ err error }

func (e applyError) Error() string { return e.err.Error() }
func (e applyError) Unwrap() error { return e.err }

// isUniqueViolation reports a primary-key clash in either dialect.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return containsAny(s, "SQLSTATE 23505", "UNIQUE constraint failed", "duplicate key")
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

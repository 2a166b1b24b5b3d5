package projections

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/migrations"
)

// Failure describes the event a projection failed on: its code refused
// the event (a permanent error, faults.Classify) on two attempts.
type Failure struct {
	// Position is the failing event's position; Skip takes it.
	Position  eventstore.Position `json:"position"`
	EventID   string              `json:"eventId"`
	EventType string              `json:"eventType"`
	Stream    string              `json:"stream"`
	Error     string              `json:"error"`
	At        time.Time           `json:"at"`
	// From is the checkpoint before the failing event.
	From eventstore.Position `json:"-"`
}

// worker applies the log to one generation of one projection.
type worker struct {
	r          *Runner
	pr         *proj
	generation string
	version    int
	active     bool
	tables     Tables

	done chan struct{} // closed when run returns
	wake chan struct{}

	mu       sync.Mutex
	state    State
	pos      eventstore.Position
	applied  int64 // events applied by this generation, all time
	lastAt   time.Time
	fail     *Failure
	meter    rateMeter
	caughtUp bool
	// bulkDone is the number of events a bulk build has folded so far
	// (its checkpoint stays at Start until it ends).
	bulkDone int64
}

func (r *Runner) newWorker(pr *proj, c checkpoint) *worker {
	w := &worker{
		r: r, pr: pr, generation: c.generation, version: c.version, active: c.active,
		tables: Tables{c.generation}, done: make(chan struct{}), wake: make(chan struct{}, 1),
		state: StateStarting, pos: c.position, applied: c.applied,
	}
	if !c.active {
		w.state = StateRebuilding
	}
	pr.mu.Lock()
	pr.workers[c.generation] = w
	pr.mu.Unlock()
	return w
}

// wakeUp resumes a failed worker: its state leaves failed at once, and the
// worker starts again from its checkpoint.
func (w *worker) wakeUp() {
	w.mu.Lock()
	failed := w.fail != nil
	if failed {
		w.fail = nil
		w.state = StateCatchingUp
		if !w.active {
			w.state = StateRebuilding
		}
	}
	w.mu.Unlock()
	if !failed {
		return
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) failure() *Failure {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fail
}

func (w *worker) position() eventstore.Position {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pos
}

func (w *worker) setState(s State) {
	w.mu.Lock()
	w.state = s
	w.mu.Unlock()
}

// run applies the log until ctx ends or the generation is superseded. For a
// generation being built, stopActive stops the active generation's worker
// before the switch. Any other error, transient ones included, is
// returned: the runner's supervise starts every worker of the projection
// again.
func (w *worker) run(ctx context.Context, stopActive func()) error {
	defer close(w.done)
	for {
		err := w.follow(ctx, stopActive)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case errors.Is(err, errFailed):
			// Failed: wait for Retry or Skip.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-w.wake:
			}
		case errors.Is(err, errFreshAttempt):
			t := time.NewTimer(w.r.cfg.RetryDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		default:
			return err
		}
		// Start again from the checkpoint in the database.
		if err := w.reloadPosition(ctx); err != nil {
			return err
		}
	}
}

var (
	errFailed = errors.New("projection failed on an event")
	// errFreshAttempt: the projection's code refused an event for the first
	// time; the worker tries again from its checkpoint before calling it a
	// failure, so that a one-off is never recorded as a failure of the data.
	errFreshAttempt = errors.New("projection refused an event once")
)

func (w *worker) reloadPosition(ctx context.Context) error {
	cps, err := loadCheckpoints(ctx, w.r.cfg.DB, w.pr.p.Name())
	if err != nil {
		return err
	}
	for _, c := range cps {
		if c.generation == w.generation {
			w.mu.Lock()
			w.pos, w.applied, w.fail = c.position, c.applied, nil
			if w.active {
				w.state = StateCatchingUp
			} else {
				w.state = StateRebuilding
			}
			w.mu.Unlock()
			return nil
		}
	}
	return errSuperseded
}

// follow catches up with pages of ReadAll, then follows a subscription.
func (w *worker) follow(ctx context.Context, stopActive func()) error {
	p := w.pr.p
	if w.active {
		w.setState(StateCatchingUp)
	} else if w.position().IsZero() {
		release, err := w.buildFromStart(ctx)
		if err != nil {
			return err
		}
		defer release()
	}
	if err := w.catchUp(ctx); err != nil {
		return err
	}
	if !w.active {
		// Caught up: stop the old generation, take what it may still have
		// seen, and switch the views in one transaction.
		stopActive()
		if err := w.catchUp(ctx); err != nil {
			return err
		}
		w.mu.Lock()
		at := w.pos
		w.mu.Unlock()
		if err := w.r.switchTo(ctx, p, w.generation, at); err != nil {
			return fmt.Errorf("switch %s to generation %s: %w", p.Name(), w.generation, err)
		}
		w.r.cfg.Logger.Info("projection rebuild switched", "projection", p.Name(), "generation", w.generation, "position", at.String())
		w.r.committed()
		return errSwitched
	}
	w.mu.Lock()
	from := w.pos
	w.caughtUp = true
	w.state = StateLive
	w.mu.Unlock()
	w.pr.outage.Recovered() // it read the log and its checkpoint
	sub, err := w.r.cfg.Store.Subscribe(ctx, from, p.Filter())
	if err != nil {
		return fmt.Errorf("subscribe %s after %s: %w", p.Name(), from, err)
	}
	defer sub.Close()
	for {
		evs, err := sub.Next(ctx)
		if err != nil {
			return fmt.Errorf("follow the log for %s: %w", p.Name(), err)
		}
		if err := w.apply(ctx, evs, sub.Position()); err != nil {
			return err
		}
	}
}

// catchUp applies the log from the checkpoint to the head in batches of
// BatchSize events; while it is a bulk build's page behind or more (after
// an outage, at start), on PostgreSQL, in batches of that page
// (catchUpBatch), so that a long outage is caught up at the bulk pace
// (unless Config.SmallCatchUp).
func (w *worker) catchUp(ctx context.Context) error {
	p := w.pr.p
	size := w.r.cfg.BatchSize
	defer w.r.cache.readers.leave(w)
	for {
		w.mu.Lock()
		from := w.pos
		w.mu.Unlock()
		if p.Filter().IsZero() {
			// Far behind, keep within two pages of the slowest, since the
			// cache keeps the last cachedPages pages, but not of one more
			// than four pages behind: that one reads other pages anyway
			// (catching up from the start while the others catch up from
			// their checkpoints), and waiting for it would only hold the
			// others' read models back. Else (the first batch, or near the
			// head) say where this one is.
			var lead int64
			if size > w.r.cfg.BatchSize {
				lead = int64(cachedPages-1) * int64(size)
			}
			if err := w.r.cache.readers.pace(ctx, w, logPlace(from), lead, 2*lead, w.r.cfg.paceWait); err != nil {
				return err
			}
		}
		evs, dec, err := w.r.readPage(ctx, from, p.Filter(), size)
		if err != nil {
			return fmt.Errorf("catch up %s after %s: %w", p.Name(), from, err)
		}
		if len(evs) == 0 {
			return nil
		}
		to := evs[len(evs)-1].Position
		if err := w.apply(withDecoded(ctx, dec), evs, to); err != nil {
			return err
		}
		size = w.r.cfg.BatchSize
		if len(evs) >= size {
			if size, err = w.r.catchUpBatch(ctx, to); err != nil {
				return fmt.Errorf("catch up %s after %s: %w", p.Name(), to, err)
			}
		}
	}
}

// catchUpBatch is the number of events of the next catch-up batch after
// at: a bulk build's page (16,384 events) when that many or more lie
// between at and the head of the log, on PostgreSQL; else BatchSize.
//
// Each batch is one transaction that reads the rows it touches and writes
// them back once (Apply), so the cost per event falls with the batch's
// size: a 16,384-event batch writes each row a player's events touch once
// instead of once per 1,000 events. Only on PostgreSQL: on SQLite the
// read models share the event log's single writer, which a long
// transaction would hold from the appends.
func (r *Runner) catchUpBatch(ctx context.Context, at eventstore.Position) (int, error) {
	if r.cfg.SmallCatchUp || r.cfg.DB.Dialect() != migrations.Postgres || r.cfg.bulkChunk <= r.cfg.BatchSize {
		return r.cfg.BatchSize, nil
	}
	head, err := r.cfg.Store.Head(ctx)
	if err != nil {
		return 0, err
	}
	if seqLag(at, head) >= int64(r.cfg.bulkChunk) {
		return r.cfg.bulkChunk, nil
	}
	return r.cfg.BatchSize, nil
}

// apply commits evs and the checkpoint `to` in one transaction. A transient
// error (faults.Transient) is returned as it is: nothing is wrong with the
// events, the runner backs off and starts again from the checkpoint in the
// database. When the projection's code refuses the batch, apply applies
// the events one by one to find the refused one, commits those before it
// and reports errFreshAttempt the first time that event is refused, then
// errFailed (the worker stops, state failed) when the fresh attempt is
// refused too.
func (w *worker) apply(ctx context.Context, evs []eventstore.RecordedEvent, to eventstore.Position) error {
	w.mu.Lock()
	from := w.pos
	w.mu.Unlock()
	err := w.commit(ctx, evs, from, to)
	if err == nil || errors.Is(err, errSuperseded) || ctx.Err() != nil || faults.Transient(err) {
		return err
	}
	// Still ours? A generation that a rebuild retired meanwhile (in another
	// process) fails its batch on its dropped tables: superseded, not a
	// batch to isolate.
	if err := w.commit(ctx, nil, from, from); err != nil {
		return err
	}
	w.r.cfg.Logger.Warn("projection batch failed; isolating the event", "projection", w.pr.p.Name(), "events", len(evs), "err", err)
	for _, e := range evs {
		w.mu.Lock()
		from := w.pos
		w.mu.Unlock()
		// Still ours, and the database answers? An error here is not the
		// event's.
		if err := w.commit(ctx, nil, from, from); err != nil {
			return err
		}
		err := w.commit(ctx, []eventstore.RecordedEvent{e}, from, e.Position)
		if err == nil {
			continue
		}
		if errors.Is(err, errSuperseded) || ctx.Err() != nil || faults.Transient(err) {
			return err
		}
		return w.refused(e, from, err)
	}
	return nil
}

// refused handles the projection's refusal of event e (a permanent error):
// errFreshAttempt the first time, a Failure and errFailed when the same
// event is refused again.
func (w *worker) refused(e eventstore.RecordedEvent, from eventstore.Position, err error) error {
	log := w.r.cfg.Logger.With("projection", w.pr.p.Name(), "generation", w.generation,
		"position", e.Position.String(), "event", e.ID, "type", e.Type, "stream", e.Stream, "err", err)
	w.pr.mu.Lock()
	suspect, seen := w.pr.suspect[w.generation]
	again := seen && suspect == e.Position
	if again {
		delete(w.pr.suspect, w.generation) // a Retry gets two attempts too
	} else {
		w.pr.suspect[w.generation] = e.Position
	}
	w.pr.mu.Unlock()
	if !again {
		log.Warn("projection refused an event; trying it once more from the checkpoint", "after", w.r.cfg.RetryDelay)
		return fmt.Errorf("%w: %w", errFreshAttempt, err)
	}
	w.mu.Lock()
	w.fail = &Failure{
		Position: e.Position, EventID: e.ID.String(), EventType: e.Type, Stream: e.Stream,
		Error: err.Error(), At: w.r.cfg.Now(), From: from,
	}
	w.state = StateFailed
	w.mu.Unlock()
	log.Error("projection failed on an event")
	return errFailed
}

func (w *worker) commit(ctx context.Context, evs []eventstore.RecordedEvent, from, to eventstore.Position) error {
	now := w.r.cfg.Now()
	err := w.r.cfg.DB.InTx(ctx, func(tx Tx) error {
		if len(evs) > 0 {
			if err := w.pr.p.Apply(ctx, tx, w.tables, evs); err != nil {
				return err
			}
		}
		if err := advanceCheckpoint(ctx, tx, w.pr.p.Name(), w.generation, from, to, len(evs), now); err != nil {
			return err
		}
		if h := w.r.cfg.beforeCommit; h != nil && len(evs) > 0 {
			h(w.pr.p.Name())
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.pos = to
	w.applied += int64(len(evs))
	if len(evs) > 0 {
		w.lastAt = evs[len(evs)-1].RecordedAt
	}
	w.meter.add(now, int64(len(evs)))
	w.mu.Unlock()
	if len(evs) > 0 {
		w.pr.outage.Recovered()
		w.pr.mu.Lock()
		if s, ok := w.pr.suspect[w.generation]; ok && !to.Less(s) {
			delete(w.pr.suspect, w.generation) // applied after all: a one-off
		}
		w.pr.mu.Unlock()
		w.r.committed()
	}
	return nil
}

// rateMeter measures events per second over the last few seconds.
type rateMeter struct {
	samples []rateSample
}

type rateSample struct {
	at time.Time
	n  int64 // cumulative
}

const rateWindow = 10 * time.Second

func (m *rateMeter) add(now time.Time, n int64) {
	total := n
	if len(m.samples) > 0 {
		total += m.samples[len(m.samples)-1].n
	}
	m.samples = append(m.samples, rateSample{now, total})
	cut := 0
	for cut < len(m.samples)-2 && now.Sub(m.samples[cut+1].at) > rateWindow {
		cut++
	}
	m.samples = m.samples[cut:]
}

func (m *rateMeter) rate(now time.Time) float64 {
	if len(m.samples) < 2 {
		return 0
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	if now.Sub(last.at) > rateWindow {
		return 0
	}
	secs := now.Sub(first.at).Seconds()
	if secs <= 0 {
		return 0
	}
	return float64(last.n-first.n) / secs
}

// pageCache keeps the last pages of the log read during catch-up, so that
// projections catching up together (at start, or all rebuilt at once) read
// each page from the store once instead of once each; a page being read is
// waited for rather than read again. Any page ReadAll returned for "after
// P" stays a correct answer for "after P" (the safe prefix of the log never
// changes), at worst shorter than a fresh read.
type pageCache struct {
	mu       sync.Mutex
	pages    map[eventstore.Position]cachedPage
	order    []eventstore.Position
	events   int // in pages
	inflight map[eventstore.Position]*pageRead
	// epoch counts drops: a read begun before one is not cached.
	epoch int
	// readers are the projections catching up through the cache, each
	// at the page it reads or applies (see catchUp).
	readers pacer[logPlace]
}

// defaultPaceWait bounds how long a projection catching up far behind, or
// building in bulk, waits for a slower one that does not move on (pacer):
// longer than a 16,384-event page takes to apply on a loaded machine.
const defaultPaceWait = 10 * time.Second

type cachedPage struct {
	evs []eventstore.RecordedEvent
	dec *decodedPage
	at  time.Time
}

// cachedPageAge bounds how long a page is reused: pages are shared by
// projections catching up together, and a page read before a stream was
// deleted (a forgotten player) must not reach a rebuild in this process
// long after, when another process did the forgetting.
const cachedPageAge = 30 * time.Second

// drop forgets every cached page and keeps the reads under way from
// caching theirs (a stream was deleted: Runner.Forget).
func (c *pageCache) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pages, c.order, c.events = map[eventstore.Position]cachedPage{}, nil, 0
	c.epoch++
}

type pageRead struct {
	done chan struct{}
	evs  []eventstore.RecordedEvent
	dec  *decodedPage
	err  error
}

// cachedPages bounds the events of the cached pages (some 1 KB each, and
// as much again once decoded) to this many bulk build pages (Config's
// bulkChunk): 48 pages of 1,000 events, or 3 of a catch-up far behind (the
// page the slowest projection applies, the one the fastest applies and the
// one read ahead), each at most an append longer than its size; some
// 100 MB at most.
const cachedPages = 3

// readAll reads at least size events after from (fewer at the head), with
// reads of at most BatchSize events. One read of a catch-up batch far
// behind (16,384 events) would be one query, for which PostgreSQL's
// planner, misjudging how many events follow a position in a log that
// grows faster than its statistics, may sort the whole rest of the log
// instead of walking the order index: 0.9 s a page on a 356,000-event log,
// against milliseconds for reads of 1,000.
func (r *Runner) readAll(ctx context.Context, from eventstore.Position, f eventstore.Filter, size int) ([]eventstore.RecordedEvent, error) {
	var out []eventstore.RecordedEvent
	for len(out) < size {
		n := min(r.cfg.BatchSize, size-len(out))
		evs, err := r.cfg.Store.ReadAll(ctx, from, f, n)
		if err != nil {
			return nil, err
		}
		switch {
		case out == nil && (len(evs) < n || n == size):
			out = evs // the whole batch in one read
		case out == nil:
			// Room for the batch at once (and the rest of an append the
			// last read may finish): grown read by read, a 16,384-event
			// batch was reallocated nine times, some 60,000 events copied.
			out = append(make([]eventstore.RecordedEvent, 0, size+eventstore.MaxEventsPerAppend), evs...)
		default:
			out = append(out, evs...)
		}
		if len(evs) < n {
			break // the head
		}
		from = evs[len(evs)-1].Position
	}
	return out, nil
}

// readPage returns the catch-up page after from, of at most size events,
// and its decoding, done once for every projection that applies the page
// (decodeEvents): from the cache when the filter is the zero one (a cached
// page may be shorter than size), else from the store.
func (r *Runner) readPage(ctx context.Context, from eventstore.Position, f eventstore.Filter, size int) ([]eventstore.RecordedEvent, *decodedPage, error) {
	if !f.IsZero() {
		evs, err := r.readAll(ctx, from, f, size)
		return evs, newDecodedPage(evs), err
	}
	c := &r.cache
	c.mu.Lock()
	if p, ok := c.pages[from]; ok && time.Since(p.at) < cachedPageAge {
		c.mu.Unlock()
		r.readAhead(ctx, p.evs, size)
		return p.evs, p.dec, nil
	}
	if rd, ok := c.inflight[from]; ok {
		c.mu.Unlock()
		select {
		case <-rd.done:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		if rd.err != nil {
			evs, err := r.readAll(ctx, from, f, size) // the reader's context may have ended
			return evs, newDecodedPage(evs), err
		}
		r.readAhead(ctx, rd.evs, size)
		return rd.evs, rd.dec, nil
	}
	rd, epoch := c.begin(from)
	c.mu.Unlock()
	r.read(ctx, rd, epoch, from, size)
	if rd.err == nil {
		r.readAhead(ctx, rd.evs, size)
	}
	return rd.evs, rd.dec, rd.err
}

// readAhead starts reading the page after evs, a page of the zero filter
// read for size events, into the cache, unless it is there or on its way
// already: while the projections apply one page of a catch-up far behind,
// the next one is read (before, a projection read a page only once it had
// applied the one before), and decoded. Only after a full page of a
// catch-up far behind (catchUpBatch: a bulk build's page, larger than
// BatchSize): near the head there is nothing to read ahead, and a
// SmallCatchUp runner never reads such pages. The read goes on
// when ctx ends (other projections may wait for it), for at most a minute.
func (r *Runner) readAhead(ctx context.Context, evs []eventstore.RecordedEvent, size int) {
	if size < r.cfg.bulkChunk || size <= r.cfg.BatchSize || len(evs) < size {
		return
	}
	from := evs[len(evs)-1].Position
	c := &r.cache
	c.mu.Lock()
	if _, ok := c.pages[from]; ok {
		c.mu.Unlock()
		return
	}
	if _, ok := c.inflight[from]; ok {
		c.mu.Unlock()
		return
	}
	rd, epoch := c.begin(from)
	c.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		r.read(ctx, rd, epoch, from, size)
		if rd.err == nil {
			rd.dec.events() // decoded ahead too
		}
	}()
}

// begin registers the read of the page after from; c.mu is held.
func (c *pageCache) begin(from eventstore.Position) (*pageRead, int) {
	if c.inflight == nil {
		c.inflight = map[eventstore.Position]*pageRead{}
		c.pages = map[eventstore.Position]cachedPage{}
	}
	rd := &pageRead{done: make(chan struct{})}
	c.inflight[from] = rd
	return rd, c.epoch
}

// read reads the page after from (of the zero filter) into rd, caches it
// and closes rd.done.
func (r *Runner) read(ctx context.Context, rd *pageRead, epoch int, from eventstore.Position, size int) {
	c := &r.cache
	rd.evs, rd.err = r.readAll(ctx, from, eventstore.Filter{}, size)
	rd.dec = newDecodedPage(rd.evs)
	c.mu.Lock()
	delete(c.inflight, from)
	if rd.err == nil && len(rd.evs) > 0 && epoch == c.epoch { // an empty page means "caught up": never cached
		if old, ok := c.pages[from]; ok { // aged out, read again
			c.order = slices.DeleteFunc(c.order, func(p eventstore.Position) bool { return p == from })
			c.events -= len(old.evs)
		}
		c.pages[from] = cachedPage{evs: rd.evs, dec: rd.dec, at: time.Now()}
		c.order = append(c.order, from)
		c.events += len(rd.evs)
		// Never fewer than cachedPages pages: a far-behind page can be a
		// little longer than its size (the rest of an append it cut), and
		// three of them must stay (pace).
		for c.events > cachedPages*r.cfg.bulkChunk && len(c.order) > cachedPages {
			c.events -= len(c.pages[c.order[0]].evs)
			delete(c.pages, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.mu.Unlock()
	close(rd.done)
}

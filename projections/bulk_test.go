package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/projections/projectiontest"
)

// bulkLog fills a PostgreSQL log with the random workload plus what it
// never writes: a QueueStopped of schema version 1 (upcast when read) on a
// played queue and as the first event of a new one, and events of a stream
// that is not a queue's. It fails the test unless every event type is in
// the log, and returns the number of events and the last position.
func bulkLog(t *testing.T, b backend) (int, eventstore.Position) {
	t.Helper()
	ctx := context.Background()
	res, err := (projectiontest.Workload{Seed: 21, Players: 25, Commands: 2500}).Run(ctx, b.store)
	if err != nil {
		t.Fatal(err)
	}
	v1 := func(at string) eventstore.EventData {
		return eventstore.EventData{ID: uuid.New(), Type: string(domain.TypeQueueStopped), SchemaVersion: 1,
			Data: []byte(`{"at":"` + at + `"}`), Metadata: eventstore.Metadata{OccurredAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}}
	}
	played := domain.PlayerID("p3").Stream()
	version, err := b.store.StreamVersion(ctx, played)
	if err != nil || version == 0 {
		t.Fatalf("stream %s at version %d (%v)", played, version, err)
	}
	n := res.Events
	last := res.Last
	for _, a := range []struct {
		stream   string
		expected eventstore.ExpectedVersion
		data     eventstore.EventData
	}{
		{played, eventstore.Exact(version), v1("2026-12-01T00:00:00Z")},
		{domain.PlayerID("old1").Stream(), eventstore.NoStream, v1("2026-11-30T12:00:00Z")},
		{"audit-1", eventstore.Any, eventstore.EventData{ID: uuid.New(), Type: "Audited", SchemaVersion: 1, Data: []byte(`{}`)}},
	} {
		ar, err := b.store.Append(ctx, a.stream, a.expected, a.data)
		if err != nil {
			t.Fatalf("append to %s: %v", a.stream, err)
		}
		n++
		last = ar.Position
	}
	seen := map[string]bool{}
	for _, e := range mustReadAll(t, b.store) {
		seen[e.Type] = true
	}
	for _, typ := range domain.EventTypes() {
		if !seen[string(typ)] {
			t.Fatalf("the log has no %s event: the test would not cover it", typ)
		}
	}
	return n, last
}

// plain hides a projection's bulk build: the generation builds batch by
// batch, event by event, as before the bulk build existed.
type plain struct{ Projection }

// A rebuild from position 0 on PostgreSQL takes the bulk build; its read
// models equal, row by row, those the event-by-event path builds from the
// same log (every event type, an upcast old schema version, another
// stream's events), and its checkpoint counts every event.
func TestBulkBuildEqualsEventByEvent(t *testing.T) {
	ctx := context.Background()
	b := openPostgres(t, "")
	events, last := bulkLog(t, b)

	// Event by event: the batch-by-batch build of a generation from 0.
	r, stop := runFor(t, b, Config{BatchSize: 97, Projections: []Projection{plain{Queues{}}, plain{PlayerProgress{}}, plain{Analytics{}}}})
	waitCaughtUp(t, r, last)
	for _, name := range r.Names() {
		rebuildAndWait(t, r, name)
	}
	stop()
	want := map[string][]string{}
	for _, v := range allViews() {
		want[v] = dump(t, b.db, v)
		if len(want[v]) == 0 {
			t.Fatalf("%s is empty", v)
		}
	}

	// Bulk, in pages smaller than the log so that streams span pages.
	var mu sync.Mutex
	built := map[string]int64{}
	r2 := startRunner(t, b, Config{bulkChunk: 500, bulkBuilt: func(name string, n int64) {
		mu.Lock()
		built[name] = n
		mu.Unlock()
	}})
	waitCaughtUp(t, r2, last)
	for _, name := range r2.Names() {
		rebuildAndWait(t, r2, name)
	}
	mu.Lock()
	for _, name := range r2.Names() {
		if built[name] != int64(events) {
			t.Errorf("%s: bulk build applied %d events, the log has %d", name, built[name], events)
		}
	}
	mu.Unlock()
	for _, v := range allViews() {
		sameRows(t, v, want[v], dump(t, b.db, v))
	}
	st, err := r2.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.EventsApplied != int64(events) {
			t.Errorf("%s: checkpoint counts %d events applied, the log has %d", s.Name, s.EventsApplied, events)
		}
	}
}

// rebuildAndWait rebuilds the projection and waits for the switch.
func rebuildAndWait(t *testing.T, r *Runner, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gen, err := r.Rebuild(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WaitRebuilt(ctx, name, gen, 20*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
}

// A bulk build stopped after some pages were committed (as a kill would
// leave it: rows in the new tables, the checkpoint at Start) leaves the
// serving generation as it was; the next attempt empties the new tables and
// builds again, and the result is the same.
func TestBulkBuildStoppedMidwayStartsAgain(t *testing.T) {
	ctx := context.Background()
	b := openPostgres(t, "")
	_, last := bulkLog(t, b)
	r0, stop := runFor(t, b, Config{Projections: []Projection{plain{Queues{}}}})
	waitCaughtUp(t, r0, last)
	stop()
	want := dump(t, b.db, "queue_status")
	wantHistory := dump(t, b.db, "task_history")

	var stops atomic.Int32
	stopped, resume := make(chan struct{}), make(chan struct{})
	r := startRunner(t, b, Config{Projections: []Projection{Queues{}}, RetryDelay: 50 * time.Millisecond, bulkChunk: 400,
		afterBulkChunk: func(string) error {
			if stops.Add(1) != 2 {
				return nil
			}
			close(stopped)
			<-resume
			return errors.New("stopped midway")
		}})
	gen, err := r.Rebuild(ctx, QueuesName)
	if err != nil {
		t.Fatal(err)
	}
	<-stopped
	// The rows of the committed page are in the new tables, the checkpoint
	// is at Start, and the views still serve the old generation.
	if n, err := countRows(ctx, b.db, physical("queue_status", gen)); err != nil || n == 0 {
		t.Fatalf("the stopped build left %d rows in its tables (%v), want some", n, err)
	}
	cps, err := loadCheckpoints(ctx, b.db, QueuesName)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cps {
		if c.generation == gen && !c.position.IsZero() {
			t.Fatalf("the stopped build's checkpoint is at %s, want Start", c.position)
		}
	}
	sameRows(t, "queue_status while the build is stopped", want, dump(t, b.db, "queue_status"))
	close(resume)
	if err := r.WaitRebuilt(ctx, QueuesName, gen, 20*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	sameRows(t, "queue_status", want, dump(t, b.db, "queue_status"))
	sameRows(t, "task_history", wantHistory, dump(t, b.db, "task_history"))
}

// A catch-up far behind the head on PostgreSQL applies batches of a bulk
// build's page (read with reads of BatchSize events), and its read models
// equal, row by row, those of the same log applied in small batches.
func TestCatchUpFarBehindEqualsSmallBatches(t *testing.T) {
	b := openPostgres(t, "")
	_, last := bulkLog(t, b)
	r, stop := runFor(t, b, Config{BatchSize: 97, Projections: allProjections()})
	waitCaughtUp(t, r, last)
	stop()

	fresh := openPostgres(t, "")
	events, freshLast := copyLog(t, b.store, fresh.store)
	var commits atomic.Int32
	r2, stop2 := runFor(t, fresh, Config{BatchSize: 50, bulkChunk: 400, Projections: allProjections(),
		beforeCommit: func(name string) {
			if name == QueuesName {
				commits.Add(1)
			}
		}})
	waitCaughtUp(t, r2, freshLast)
	stop2()
	// In batches of 50 it would take events/50 commits; far behind, most
	// are batches of 400.
	if n := int(commits.Load()); n == 0 || n > events/50/2 {
		t.Fatalf("%d batches for %d events: the catch-up did not take batches of 400", n, events)
	}
	for _, v := range allViews() {
		sameRows(t, v, dump(t, b.db, v, "last_position"), dump(t, fresh.db, v, "last_position"))
	}
}

// With SmallCatchUp a catch-up far behind the head stays in batches of
// BatchSize (the processor's schedule: its due loop claims only committed
// rows, so the first rows must commit soon), and its read models equal
// those of the log applied in bulk pages.
func TestSmallCatchUpKeepsBatchSize(t *testing.T) {
	b := openPostgres(t, "")
	_, last := bulkLog(t, b)
	r, stop := runFor(t, b, Config{BatchSize: 97, Projections: allProjections()})
	waitCaughtUp(t, r, last)
	stop()

	fresh := openPostgres(t, "")
	events, freshLast := copyLog(t, b.store, fresh.store)
	var commits atomic.Int32
	r2, stop2 := runFor(t, fresh, Config{BatchSize: 50, bulkChunk: 400, SmallCatchUp: true, Projections: allProjections(),
		beforeCommit: func(name string) {
			if name == QueuesName {
				commits.Add(1)
			}
		}})
	waitCaughtUp(t, r2, freshLast)
	stop2()
	// Queues reads most events: batches of 50 take nearly events/50
	// commits; batches of 400 would take about events/400.
	if n := int(commits.Load()); n < events/100 {
		t.Fatalf("%d batches for %d events: the catch-up took batches larger than 50", n, events)
	}
	for _, v := range allViews() {
		sameRows(t, v, dump(t, b.db, v, "last_position"), dump(t, fresh.db, v, "last_position"))
	}
}

// A catch-up far behind the head reads the next page while the projections
// apply this one: while the first batch of a bulk build's page (400 events)
// is held in its transaction, the cache holds the page after it, or is
// reading it.
func TestCatchUpFarBehindReadsAhead(t *testing.T) {
	b := openPostgres(t, "")
	_, last := bulkLog(t, b)
	var (
		runner  atomic.Pointer[Runner]
		commits atomic.Int32
		ahead   atomic.Bool
	)
	r, stop := runFor(t, b, Config{BatchSize: 50, bulkChunk: 400, Projections: []Projection{Queues{}},
		beforeCommit: func(string) {
			// The first batch is BatchSize (at Start), the second a page
			// of 400: Start's and the second's pages are cached, and the
			// one after the second must come without this commit.
			if commits.Add(1) != 2 {
				return
			}
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				r := runner.Load()
				if r == nil { // runFor has not returned yet
					time.Sleep(10 * time.Millisecond)
					continue
				}
				r.cache.mu.Lock()
				n := len(r.cache.pages) + len(r.cache.inflight)
				r.cache.mu.Unlock()
				if n >= 3 {
					ahead.Store(true)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}})
	runner.Store(r)
	waitCaughtUp(t, r, last)
	stop()
	if commits.Load() < 3 {
		t.Fatalf("%d batches: the log is not far enough behind for the test", commits.Load())
	}
	if !ahead.Load() {
		t.Fatal("the page after the batch being applied was not read while it was applied")
	}
}

// readCounter counts the events ReadAll returns for the zero filter in
// reads of more than one event: the catch-up's pages (the status's probes
// of what follows a checkpoint read one).
type readCounter struct {
	eventstore.Store
	events atomic.Int64
}

func (s *readCounter) ReadAll(ctx context.Context, after eventstore.Position, f eventstore.Filter, limit int) ([]eventstore.RecordedEvent, error) {
	evs, err := s.Store.ReadAll(ctx, after, f, limit)
	if f.IsZero() && limit > 1 {
		s.events.Add(int64(len(evs)))
	}
	return evs, err
}

func (s *readCounter) Unwrap() eventstore.Store { return s.Store }

// Projections catching up far behind together read each page of the log
// once, even when one of them applies its batches far slower than the
// others: the faster ones wait for it rather than run so far ahead that
// the pages it still needs leave the cache and are read again.
func TestSlowProjectionDoesNotReadPagesTwice(t *testing.T) {
	b := openPostgres(t, "")
	events, last := bulkLog(t, b)
	counter := &readCounter{Store: b.store}
	counted := backend{name: b.name, store: counter, db: b.db, url: b.url}
	r, stop := runFor(t, counted, Config{BatchSize: 20, bulkChunk: 100, Projections: allProjections(),
		beforeCommit: func(name string) {
			if name == QueuesName {
				time.Sleep(30 * time.Millisecond)
			}
		}})
	waitCaughtUp(t, r, last)
	stop()
	n := counter.events.Load()
	if n > int64(events)*11/10 {
		t.Fatalf("the catch-up read %d events of a %d-event log: pages read again", n, events)
	}
	t.Logf("the catch-up read %d events of a %d-event log", n, events)
}

// byStreamCounter counts the events ReadByStream returns (the bulk
// build's pages) once counting is set, and holds every read but the first
// page's until open is closed.
type byStreamCounter struct {
	eventstore.Store
	counting atomic.Bool
	open     chan struct{}
	events   atomic.Int64
	mu       sync.Mutex
	reads    []string // the pages read, in order: where each started
}

func (s *byStreamCounter) ReadByStream(ctx context.Context, upTo eventstore.Position, afterStream string, afterVersion int64, limit int) (
	[]eventstore.RecordedEvent, string, int64, bool, error) {
	if !s.counting.Load() {
		return s.reader().ReadByStream(ctx, upTo, afterStream, afterVersion, limit)
	}
	if afterStream != "" {
		select {
		case <-s.open:
		case <-ctx.Done():
			return nil, "", 0, false, ctx.Err()
		}
	}
	evs, stream, version, more, err := s.reader().ReadByStream(ctx, upTo, afterStream, afterVersion, limit)
	s.events.Add(int64(len(evs)))
	s.mu.Lock()
	s.reads = append(s.reads, fmt.Sprintf("%s/%d (%s, %d events)", afterStream, afterVersion, time.Now().Format("05.000"), len(evs)))
	s.mu.Unlock()
	return evs, stream, version, more, err
}

// check fails the test if the pages read hold more than a tenth more
// events than the log's, listing the reads.
func (s *byStreamCounter) check(t *testing.T, events int) {
	t.Helper()
	n := s.events.Load()
	if n > int64(events)*11/10 {
		s.mu.Lock()
		defer s.mu.Unlock()
		t.Fatalf("the bulk builds read %d events of a %d-event log: pages read again; reads after: %v", n, events, s.reads)
	}
	t.Logf("the bulk builds read %d events of a %d-event log", n, events)
}

func (s *byStreamCounter) reader() streamReader {
	src, _ := streamReaderOf(s.Store)
	return src
}

func (s *byStreamCounter) Unwrap() eventstore.Store { return s.Store }

// Projections rebuilt in bulk together read each page of the log once,
// even when one of them folds and writes its pages far slower than the
// others: the faster ones wait for it rather than run so far ahead that
// the pages it still needs leave the scan's cache and are read again. The
// log's pages after the first are held until every builder has joined
// (the three rebuilds are asked for one after the other, and 100-event
// pages take a millisecond or two to read).
func TestSlowBulkBuilderDoesNotReadPagesTwice(t *testing.T) {
	ctx := context.Background()
	b := openPostgres(t, "")
	events, last := bulkLog(t, b)
	counter := &byStreamCounter{Store: b.store, open: make(chan struct{})}
	r := startRunner(t, backend{name: b.name, store: counter, db: b.db, url: b.url}, Config{bulkChunk: 100,
		afterBulkChunk: func(name string) error {
			if name == QueuesName {
				time.Sleep(30 * time.Millisecond)
			}
			return nil
		}})
	waitCaughtUp(t, r, last) // the first build, in bulk too
	counter.counting.Store(true)
	gens := startRebuilds(ctx, t, r)
	waitForRunner(t, r, "every bulk build under way", func(context.Context) (bool, error) {
		r.scan.builders.mu.Lock()
		defer r.scan.builders.mu.Unlock()
		return len(r.scan.builders.marks) == len(gens), nil
	})
	close(counter.open)
	waitRebuilt(ctx, t, r, gens, 20*time.Millisecond)
	counter.check(t, events)
}

// A bulk builder slow to start (emptying its tables, say) is waited for
// from the moment its build begins: the others, already reading, do not
// run so far ahead meanwhile that it finds the first pages gone. The
// log's reads wait until every build has begun, then queues' start is
// held for 300 ms (a 100-event page takes a millisecond or two).
func TestLateBulkBuilderFindsTheFirstPages(t *testing.T) {
	ctx := context.Background()
	b := openPostgres(t, "")
	events, last := bulkLog(t, b)
	counter := &byStreamCounter{Store: b.store, open: make(chan struct{})}
	var (
		mu    sync.Mutex
		begun = map[string]bool{}
	)
	r := startRunner(t, backend{name: b.name, store: counter, db: b.db, url: b.url}, Config{bulkChunk: 100,
		beforeBulk: func(name string) {
			if !counter.counting.Load() {
				return
			}
			mu.Lock()
			begun[name] = true
			if len(begun) == 3 {
				close(counter.open)
			}
			mu.Unlock()
			if name == QueuesName {
				time.Sleep(300 * time.Millisecond)
			}
		}})
	waitCaughtUp(t, r, last) // the first build, in bulk too
	counter.counting.Store(true)
	gens := startRebuilds(ctx, t, r)
	waitRebuilt(ctx, t, r, gens, 20*time.Millisecond)
	counter.check(t, events)
}

// A bulk builder that stalls (its database blocks a page's commit) holds
// the others back for paceWait (1 s here), not for as long as it stalls:
// their rebuilds switch while it is still stalled, well within 15 s
// (without the bound they wait three pages ahead of it).
func TestStalledBulkBuilderHoldsNoOneBack(t *testing.T) {
	b := openPostgres(t, "")
	_, last := bulkLog(t, b)
	var (
		rebuilding atomic.Bool // not the first build
		pages      atomic.Int32
		release    = make(chan struct{})
	)
	r := startRunner(t, b, Config{bulkChunk: 100, paceWait: time.Second,
		afterBulkChunk: func(name string) error {
			if name == QueuesName && rebuilding.Load() && pages.Add(1) == 2 {
				<-release
			}
			return nil
		}})
	t.Cleanup(func() { close(release) }) // before startRunner's own cleanup
	waitCaughtUp(t, r, last)
	rebuilding.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	gens := startRebuilds(ctx, t, r)
	for _, name := range []string{PlayerProgressName, AnalyticsName} {
		if err := r.WaitRebuilt(ctx, name, gens[name], 20*time.Millisecond, nil); err != nil {
			t.Fatalf("%s's rebuild while queues' stalls: %v", name, err)
		}
	}
	if pages.Load() < 2 {
		t.Fatal("queues' build never reached its stall: the test did not test it")
	}
	if s, err := r.StatusOf(context.Background(), QueuesName); err != nil || s.Rebuild == nil {
		t.Fatalf("queues' rebuild %+v (%v), want still under way", s.Rebuild, err)
	}
}

// startRebuilds asks for a rebuild of every projection of r, one after
// the other, and returns their new generations by name.
func startRebuilds(ctx context.Context, t testing.TB, r *Runner) map[string]string {
	t.Helper()
	gens := map[string]string{}
	for _, name := range r.Names() {
		gen, err := r.Rebuild(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		gens[name] = gen
	}
	return gens
}

// waitRebuilt waits for every rebuild of gens to switch, looking every
// poll.
func waitRebuilt(ctx context.Context, t testing.TB, r *Runner, gens map[string]string, poll time.Duration) {
	t.Helper()
	for name, gen := range gens {
		if err := r.WaitRebuilt(ctx, name, gen, poll, nil); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// A projection catching up far behind that stalls (its database blocks a
// batch) holds the others back for paceWait (1 s here), not for as long as
// it stalls: they reach the head while it is still stalled, well within
// 15 s (without the bound they stay two pages ahead of it).
func TestStalledProjectionHoldsNoOneBack(t *testing.T) {
	b := openPostgres(t, "")
	_, last := bulkLog(t, b)
	r := runWithQueuesStalled(t, b, time.Second)
	othersReach(t, r, last, "while queues stalls")
	if s, err := r.StatusOf(context.Background(), QueuesName); err != nil || !s.Position.Less(last) {
		t.Fatalf("queues at %v (%v) while stalled, want behind %v", s.Position, err, last)
	}
}

// Projections catching up far apart in the log (one added to the runner,
// catching up from the start, while the others catch up from their
// checkpoints) read different pages anyway: none waits for the other.
func TestFarApartProjectionsDoNotPaceEachOther(t *testing.T) {
	ctx := context.Background()
	b := openPostgres(t, "")
	_, first := bulkLog(t, b)
	r1, stop1 := runFor(t, b, Config{Projections: []Projection{PlayerProgress{}, Analytics{}}})
	waitCaughtUp(t, r1, first)
	stop1()
	if _, err := (projectiontest.Workload{Seed: 22, Prefix: "later", Players: 25, Commands: 2500}).Run(ctx, b.store); err != nil {
		t.Fatal(err)
	}
	head, err := b.store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Queues, from the start, stalls at its second batch for longer than
	// the test; a minute before a projection counts as stalled.
	r := runWithQueuesStalled(t, b, time.Minute)
	othersReach(t, r, head, "it waited for queues, far behind it")
	if s, err := r.StatusOf(ctx, QueuesName); err != nil || !s.Position.Less(first) {
		t.Fatalf("queues at %v (%v), want still before %v", s.Position, err, first)
	}
}

// runWithQueuesStalled runs every projection on b in far-behind pages of
// 100 events, queues stalling at its second batch until the test ends.
func runWithQueuesStalled(t *testing.T, b backend, paceWait time.Duration) *Runner {
	t.Helper()
	release := make(chan struct{})
	var batches atomic.Int32
	r, stop := runFor(t, b, Config{BatchSize: 20, bulkChunk: 100, paceWait: paceWait, Projections: allProjections(),
		beforeCommit: func(name string) {
			if name == QueuesName && batches.Add(1) == 2 {
				<-release
			}
		}})
	t.Cleanup(func() { close(release); stop() }) // before runFor's own cleanup
	return r
}

// othersReach fails the test unless player_progress and analytics reach
// head within 15 s.
func othersReach(t *testing.T, r *Runner, head eventstore.Position, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, name := range []string{PlayerProgressName, AnalyticsName} {
		for {
			s, err := r.StatusOf(ctx, name)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !s.Position.Less(head) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s at %v after 15 s, want %v: %s", name, s.Position, head, why)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

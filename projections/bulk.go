package projections

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/migrations"
)

// The bulk build: how a new generation is built from position 0 on
// PostgreSQL at the pace of COPY rather than of batches of upserts.
//
// The log up to a target position (the head when the build starts) is read
// in stream order (eventstore/postgres ReadByStream: pages of defaultBulkChunk
// events by the (stream_id, version) key, each a short read-only query;
// the next page is fetched while one is decoded), decoded once for all the
// projections building at the same time (they share the pages, bulkScan),
// and folded in memory one stream at a time
// through the same code as Apply (queueRow.applyRecorded, ...). A stream's
// rows are final when its last event is folded, so every row of a
// per-player table is written once, with COPY, and nothing is read back;
// the few rows keyed by day (analytics_task_daily, analytics_grants_daily)
// are kept in memory and written at the end. After every page the rows it
// finished are committed in a transaction of their own (a COPY of some
// thousands of rows: milliseconds; pageWriter, while the fold goes on with
// the next page), never one transaction for the whole
// build: on PostgreSQL every reader of the log reads only below the oldest
// open writing transaction of the cluster, so a long one would stall every
// projection, the processor and the live updates. The last transaction
// moves the generation's checkpoint from Start to the target, and the build
// goes on as before: catch-up from the checkpoint in batches, then the
// blue-green switch.
//
// While a build generation's checkpoint is at Start, only the holder of its
// advisory lock (a session-level lock on a connection of its own: no
// transaction stays open) writes into its tables: it empties them, then
// builds. A process killed mid-build loses its session and the lock; the
// next builder finds the checkpoint still at Start, empties the tables and
// builds again (a restart, not a resume: the 1,000,000-event build takes
// seconds). Other processes wait until the checkpoint leaves Start, then
// catch up from it as usual.
//
// Memory: at most bulkCachedChunks pages of defaultBulkChunk events, decoded
// (about 1 KB an event: some 100 MB), plus one stream's state and the rows
// of at most 2+bulkWriteQueue pages per projection (one folded, the others
// waiting or being written: some thousands of rows a page), plus the day-keyed aggregates (days × task
// types, skills and items). It does not grow with the number of players or
// the length of a stream.
//
// When the projection's code refuses an event during the bulk build (a
// permanent error), the builder empties the tables again and builds that
// generation the old way, batch by batch from Start, still holding the lock
// until its checkpoint has left Start, so the refused event is reported
// (fresh attempt, then failed) exactly as before.

const (
	// defaultBulkChunk is the number of events of one read of the log and
	// of one commit of the bulk build.
	defaultBulkChunk = 16384
	// bulkCachedChunks is the number of decoded pages kept for the
	// projections building together.
	bulkCachedChunks = 6
	// bulkReadAhead is the number of pages read ahead of the one asked for.
	bulkReadAhead = 2
	// bulkWriteQueue is the number of folded pages of a projection that
	// may wait for their commit.
	bulkWriteQueue = 3
)

// bulkProjection is a projection that can build a generation from position
// 0 with a bulkFold.
type bulkProjection interface {
	Projection
	newBulkFold() bulkFold
}

// bulkFold folds whole streams, one after the other, into rows that it
// writes with COPY into the empty tables of a generation.
type bulkFold interface {
	// add folds the event re of player's queue stream, decoded as e. All
	// the events of one stream come together, in version order.
	add(re *eventstore.RecordedEvent, player string, e domain.Event) error
	// endStream says that the current stream has no more events: its rows
	// are final.
	endStream()
	// take returns the write of the final rows gathered so far and
	// forgets them: the write runs on another goroutine while the fold
	// goes on.
	take() bulkWrite
	// finish writes the rows kept to the end (after the last take).
	finish(ctx context.Context, tx Tx, t Tables) error
}

// bulkWrite writes rows of a bulk build with COPY into the tables t.
type bulkWrite func(ctx context.Context, tx Tx, t Tables) error

// streamReader reads a prefix of the log in stream order
// (eventstore/postgres.Store.ReadByStream).
type streamReader interface {
	ReadByStream(ctx context.Context, upTo eventstore.Position, afterStream string, afterVersion int64, limit int) (
		evs []eventstore.RecordedEvent, nextStream string, nextVersion int64, more bool, err error)
}

// copier is a transaction that can COPY rows into a table (pgTx).
type copier interface {
	copyFrom(ctx context.Context, table string, cols []string, rows [][]any) (int64, error)
}

// locker takes a session-level lock without holding a transaction (pgDB).
type locker interface {
	tryLock(ctx context.Context, key string) (release func(), ok bool, err error)
}

// bulkOf returns p as a bulkProjection, looking through decorators that
// say what they decorate (tracing.Projection): the bulk build skips their
// Apply, which only adds spans.
func bulkOf(p Projection) (bulkProjection, bool) {
	for {
		if b, ok := p.(bulkProjection); ok {
			return b, p.Filter().IsZero()
		}
		u, ok := p.(interface{ Unwrap() Projection })
		if !ok {
			return nil, false
		}
		p = u.Unwrap()
	}
}

// streamReaderOf returns s as a streamReader, looking through decorators
// (tracing.Store, metrics' store).
func streamReaderOf(s eventstore.Store) (streamReader, bool) {
	return eventstore.As[streamReader](s)
}

func copyRows(ctx context.Context, tx Tx, table string, cols []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	c, ok := tx.(copier)
	if !ok {
		return fmt.Errorf("copy %d rows into %s: the database cannot COPY", len(rows), table)
	}
	if _, err := c.copyFrom(ctx, table, cols, rows); err != nil {
		return fmt.Errorf("copy %d rows into %s: %w", len(rows), table, err)
	}
	return nil
}

// buildFromStart runs while the worker's build generation is at Start: it
// takes the generation's lock (or waits until another process's build has
// moved the checkpoint) and, when the projection, the store and the
// database allow it, builds the generation in bulk up to a target; the
// worker then catches up from its checkpoint as usual. release frees the
// lock: call it when the worker stops following.
func (w *worker) buildFromStart(ctx context.Context) (release func(), err error) {
	noop := func() {}
	lk, ok := w.r.cfg.DB.(locker)
	if !ok {
		return noop, nil
	}
	key := "taskqueue projection build " + w.pr.p.Name() + "/" + w.generation
	for {
		rel, got, err := lk.tryLock(ctx, key)
		if err != nil {
			return nil, err
		}
		if got {
			release = rel
			break
		}
		// Another process builds it: wait for its checkpoint to leave Start.
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		if err := w.reloadPosition(ctx); err != nil {
			return nil, err
		}
		if !w.position().IsZero() {
			return noop, nil
		}
	}
	if err := w.reloadPosition(ctx); err != nil {
		release()
		return nil, err
	}
	if !w.position().IsZero() {
		return release, nil
	}
	if err := w.bulkBuild(ctx); err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// noBulk reports whether the bulk build of this generation was given up
// (the projection's code refused an event).
func (w *worker) noBulk() bool {
	w.pr.mu.Lock()
	defer w.pr.mu.Unlock()
	return w.pr.noBulk[w.generation]
}

// bulkBuild builds the generation in bulk, if it can, and leaves the
// checkpoint at the target; or leaves it at Start with empty tables, for
// the batch-by-batch build. Errors are the database's or the log's.
func (w *worker) bulkBuild(ctx context.Context) error {
	p := w.pr.p
	bp, ok := bulkOf(p)
	if !ok || w.noBulk() || w.r.cfg.DB.Dialect() != migrations.Postgres {
		return nil
	}
	src, ok := streamReaderOf(w.r.cfg.Store)
	if !ok {
		return nil
	}
	// Builders already reading wait for this one from now, while it
	// empties its tables and joins the scan, not only once it reads: in a
	// benchmark round queues asked for its first page a second after the
	// others.
	if err := w.r.scan.builders.pace(ctx, w, 0, 0, 0, 0); err != nil {
		return err
	}
	defer w.r.scan.builders.leave(w)
	if h := w.r.cfg.beforeBulk; h != nil {
		h(p.Name())
	}
	if err := w.emptyTables(ctx); err != nil {
		return err
	}
	target, err := w.r.scan.begin(ctx, w.r.cfg.Store)
	if err != nil {
		return fmt.Errorf("bulk build of %s: read the head: %w", p.Name(), err)
	}
	defer w.r.scan.end()
	if target.IsZero() {
		return nil // an empty log: nothing to build
	}
	log := w.r.cfg.Logger.With("projection", p.Name(), "generation", w.generation)
	log.Info("projection bulk build started", "to", target.String())
	start := time.Now()
	n, err := w.bulkFold(ctx, bp, src, target)
	var refusal applyError
	if errors.As(err, &refusal) && !faults.Transient(refusal.err) && ctx.Err() == nil {
		log.Warn("projection bulk build refused an event; building batch by batch", "err", refusal.err)
		w.pr.mu.Lock()
		w.pr.noBulk[w.generation] = true
		w.pr.mu.Unlock()
		w.setBulkDone(0)
		return w.emptyTables(ctx)
	}
	if err != nil {
		return fmt.Errorf("bulk build of %s into %s: %w", p.Name(), w.generation, err)
	}
	secs := time.Since(start).Seconds()
	log.Info("projection bulk build done", "events", n, "seconds", fmt.Sprintf("%.1f", secs), "events_per_second", int(float64(n)/secs))
	return nil
}

// emptyTables empties the generation's tables, if its checkpoint is still
// at Start.
func (w *worker) emptyTables(ctx context.Context) error {
	return w.r.cfg.DB.InTx(ctx, func(tx Tx) error {
		if err := advanceCheckpoint(ctx, tx, w.pr.p.Name(), w.generation, eventstore.Start, eventstore.Start, 0, w.r.cfg.Now()); err != nil {
			return err
		}
		for _, t := range w.pr.p.Tables() {
			if _, err := tx.Exec(ctx, "TRUNCATE "+w.tables.Name(t)); err != nil {
				return fmt.Errorf("empty %s: %w", w.tables.Name(t), err)
			}
		}
		return nil
	})
}

func (w *worker) setBulkDone(n int64) {
	w.mu.Lock()
	w.bulkDone = n
	w.mu.Unlock()
}

// bulkFold reads the log up to target in stream order, folds it and
// commits the rows page by page (pageWriter), then the checkpoint. It
// returns the number of events (all streams) it applied. An error of the
// projection's code comes back as an applyError.
func (w *worker) bulkFold(ctx context.Context, bp bulkProjection, src streamReader, target eventstore.Position) (n int64, err error) {
	name := w.pr.p.Name()
	fold := bp.newBulkFold()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pw := w.startPageWriter(ctx)
	defer func() {
		if werr := pw.close(); err == nil {
			err = werr
		}
	}()
	var (
		cur    scanCursor
		page   pagePlace
		player string
	)
	for ; ; page++ {
		// Every builder walks the same pages from the first, so one far
		// behind (started later) is waited for too: it reads the pages
		// the others passed, then shares theirs.
		if err := w.r.scan.builders.pace(ctx, w, page, bulkLead, math.MaxInt64, w.r.cfg.paceWait); err != nil {
			return n, err
		}
		ch, next, err := w.r.scan.chunk(ctx, src, scanKey{target, cur}, w.r.cfg.bulkChunk)
		if err != nil {
			return n, fmt.Errorf("read the log after %s/%d: %w", cur.stream, cur.version, err)
		}
		for i := range ch {
			se := &ch[i]
			if se.err != nil {
				return n, applyError{se.err}
			}
			if se.player == "" {
				continue // not a queue stream
			}
			if se.player != player {
				fold.endStream()
				player = se.player
			}
			if err := fold.add(se.re, se.player, se.e); err != nil {
				return n, applyError{err}
			}
		}
		if len(ch) > 0 {
			n += int64(len(ch))
			if err := pw.write(fold.take(), n, len(ch)); err != nil {
				return n, err
			}
		}
		if next == nil {
			break
		}
		cur = *next
	}
	fold.endStream()
	if err := pw.close(); err != nil {
		return n, err
	}
	now := w.r.cfg.Now()
	last := fold.take()
	err = w.r.cfg.DB.InTx(ctx, func(tx Tx) error {
		if err := last(ctx, tx, w.tables); err != nil {
			return err
		}
		if err := fold.finish(ctx, tx, w.tables); err != nil {
			return err
		}
		return advanceCheckpoint(ctx, tx, name, w.generation, eventstore.Start, target, int(n), now)
	})
	if err != nil {
		return n, err
	}
	w.mu.Lock()
	w.pos, w.applied, w.bulkDone = target, n, 0
	w.mu.Unlock()
	if h := w.r.cfg.bulkBuilt; h != nil {
		h(name, n)
	}
	w.r.committed()
	return n, nil
}

// pageWriter commits the pages of a bulk build, in order, on a goroutine
// of its own, so that the fold of the next page goes on meanwhile; at most
// bulkWriteQueue pages wait for it, and those that waited are committed
// together.
//
// Each page is a transaction of its own that leaves the checkpoint at
// Start, committed with synchronous_commit off: the build does not need
// them durable one by one, since a crash before the last transaction (the
// one that moves the checkpoint, committed as usual) builds the generation
// again from empty tables anyway, and PostgreSQL writes the WAL in order,
// so that last commit's flush makes every page before it durable too.
type pageWriter struct {
	w     *worker
	pages chan bulkPage
	done  chan struct{}
	err   error // set before done is closed
}

type bulkPage struct {
	write  bulkWrite
	n      int64 // events folded up to this page's end
	events int   // in this page
}

func (w *worker) startPageWriter(ctx context.Context) *pageWriter {
	pw := &pageWriter{w: w, pages: make(chan bulkPage, bulkWriteQueue), done: make(chan struct{})}
	go func() {
		defer close(pw.done)
		for p := range pw.pages {
			// The pages that came while the last commit ran go together:
			// under load, fewer and larger transactions.
			batch := []bulkPage{p}
		more:
			for len(batch) <= bulkWriteQueue {
				select {
				case p, ok := <-pw.pages:
					if !ok {
						break more
					}
					batch = append(batch, p)
				default:
					break more
				}
			}
			if err := pw.commit(ctx, batch); err != nil {
				pw.err = err // the folder sees it at its next write
				return
			}
		}
	}()
	return pw
}

// commit writes pages in one transaction.
func (pw *pageWriter) commit(ctx context.Context, pages []bulkPage) error {
	w := pw.w
	name := w.pr.p.Name()
	err := w.r.cfg.DB.InTx(ctx, func(tx Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			return err
		}
		// Still ours and still at Start (the lock makes sure; this
		// double-checks it).
		if err := advanceCheckpoint(ctx, tx, name, w.generation, eventstore.Start, eventstore.Start, 0, w.r.cfg.Now()); err != nil {
			return err
		}
		for _, p := range pages {
			if err := p.write(ctx, tx, w.tables); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	events := 0
	for _, p := range pages {
		events += p.events
	}
	w.mu.Lock()
	w.bulkDone = pages[len(pages)-1].n
	w.meter.add(w.r.cfg.Now(), int64(events))
	w.mu.Unlock()
	if h := w.r.cfg.afterBulkChunk; h != nil {
		return h(name)
	}
	return nil
}

// write hands a page to the writer; it returns the writer's error once it
// has failed.
func (pw *pageWriter) write(p bulkWrite, n int64, events int) error {
	select {
	case pw.pages <- bulkPage{p, n, events}:
		return nil
	case <-pw.done:
		return pw.err
	}
}

// close waits until every page handed over is committed (or the writer
// failed) and returns the writer's error. Calling it again is a no-op.
func (pw *pageWriter) close() error {
	select {
	case <-pw.done:
	default:
		close(pw.pages)
		<-pw.done
	}
	return pw.err
}

// scanCursor is where a read in stream order continues: after this
// version of this stream.
type scanCursor struct {
	stream  string
	version int64
}

type scanKey struct {
	upTo  eventstore.Position
	after scanCursor
}

// scanned is one event of a page read in stream order, decoded.
type scanned struct {
	re     *eventstore.RecordedEvent // in the page read
	player string                    // "" for an event of another stream than a queue's
	e      domain.Event              // the decoded event of a queue stream
	err    error                     // the event of a queue stream does not decode
}

// scanRead is the read of one page: fetched is closed when its events have
// come (next is then where the next page starts, nil when the page was the
// last), done when they are decoded too (or the read failed: err).
type scanRead struct {
	fetched chan struct{}
	next    *scanCursor
	done    chan struct{}
	events  []scanned
	err     error
}

// bulkScan shares the pages of the log read in stream order, decoded,
// between the projections building at the same time: a build that starts
// while others run takes their target, so they read the same pages, and
// each page is read and decoded once. The bulkReadAhead pages after the
// one asked for are read ahead, and the last bulkCachedChunks pages are
// kept, so a builder keeps within bulkLead pages of the slowest (builders):
// further ahead, it would push out pages the slower one has yet to fold,
// which would read and decode them again (without it, rebuilds of a
// 1,000,000-event log decoded it about two and a half times over and took
// half as long again). Safe for concurrent use.
type bulkScan struct {
	mu     sync.Mutex
	users  int
	target eventstore.Position
	reads  map[scanKey]*scanRead
	order  []scanKey
	// builders are where the builds are, by the number of the page each
	// asks for next.
	builders pacer[pagePlace]
}

// bulkLead is how many pages a builder may read ahead of the slowest:
// with bulkReadAhead more being read, the slowest one's next page is
// still among the bulkCachedChunks kept.
const bulkLead = bulkCachedChunks - bulkReadAhead - 1

// begin returns the target of the builds under way, or the head of the
// log when none is. Call end when the build stops.
func (s *bulkScan) begin(ctx context.Context, store eventstore.Store) (eventstore.Position, error) {
	s.mu.Lock()
	if s.users > 0 {
		s.users++
		t := s.target
		s.mu.Unlock()
		return t, nil
	}
	s.mu.Unlock()
	head, err := store.Head(ctx)
	if err != nil {
		return eventstore.Position{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users == 0 {
		s.target = head
	}
	s.users++
	return s.target, nil
}

func (s *bulkScan) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users--
	if s.users == 0 {
		s.reads, s.order = nil, nil
	}
}

// chunk returns the page at k, read (and decoded) once for every builder,
// and where the next page starts (nil after the last page), and makes sure
// the bulkReadAhead pages after it are being read. A page may hold no
// events before the last one (events past the target).
func (s *bulkScan) chunk(ctx context.Context, src streamReader, k scanKey, size int) ([]scanned, *scanCursor, error) {
	rd := s.read(src, k, size)
	s.readAhead(src, k, rd, size, bulkReadAhead)
	select {
	case <-rd.done:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	if rd.err != nil {
		s.mu.Lock()
		if s.reads[k] == rd {
			delete(s.reads, k) // the next builder asking reads it again
		}
		s.mu.Unlock()
		return nil, nil, rd.err
	}
	return rd.events, rd.next, nil
}

// readAhead starts reading the n pages after page k (read by rd), each as
// soon as the events of the one before have come: the next page is
// fetched while this one is decoded.
func (s *bulkScan) readAhead(src streamReader, k scanKey, rd *scanRead, size, n int) {
	if n == 0 {
		return
	}
	go func() {
		<-rd.fetched
		if rd.next == nil {
			return // the last page, or a failed read
		}
		next := scanKey{k.upTo, *rd.next}
		s.readAhead(src, next, s.read(src, next, size), size, n-1)
	}()
}

// read returns the read of page k, started if need be.
func (s *bulkScan) read(src streamReader, k scanKey, size int) *scanRead {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rd, ok := s.reads[k]; ok {
		return rd
	}
	if s.reads == nil {
		s.reads = map[scanKey]*scanRead{}
	}
	rd := &scanRead{fetched: make(chan struct{}), done: make(chan struct{})}
	s.reads[k] = rd
	s.order = append(s.order, k)
	if len(s.order) > bulkCachedChunks {
		delete(s.reads, s.order[0])
		s.order = s.order[1:]
	}
	go func() {
		defer close(rd.done)
		// Not the asker's context: other builders may wait for this page.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		evs, stream, version, more, err := src.ReadByStream(ctx, k.upTo, k.after.stream, k.after.version, size)
		if err == nil && more {
			rd.next = &scanCursor{stream, version}
		}
		close(rd.fetched)
		if err != nil {
			rd.err = err
			return
		}
		rd.events = decodeAll(evs)
	}()
	return rd
}

// decodeAll decodes a page on two goroutines (the builders fold it on
// theirs).
func decodeAll(evs []eventstore.RecordedEvent) []scanned {
	out := make([]scanned, len(evs))
	var wg sync.WaitGroup
	half := len(evs) / 2
	for _, part := range [][2]int{{0, half}, {half, len(evs)}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := part[0]; i < part[1]; i++ {
				se := &out[i]
				se.re = &evs[i]
				se.player, se.e, _, se.err = decode(se.re)
			}
		}()
	}
	wg.Wait()
	return out
}

package postgres

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"

	"github.com/taskqueue/taskqueue/eventstore"
)

// tailReads shares the reads of the subscriptions that follow the head of
// the log. A committed append wakes every subscription of the process (in
// `taskqueue serve` the projections, the processor's schedule, the relay
// and the realtime hub) and each used to read the same few new events with
// a query of its own. A subscription whose last read reached the head asks
// tailReads instead: one read of the unfiltered log, from the lowest
// position of the requests it answers, gives each of them the events after
// its own position that its filter selects.
//
// When is a shared read fresh enough? A subscription takes its wake-up
// channel (of generation gen, listener.wake) before it reads, and reads
// again when that channel closes: at the first wake-up after gen, which an
// append that commits later causes. So its read must see what committed
// before the wake-up gen was sent, and any read that started at generation
// gen or later does (a wake-up is sent after its commit). A request thus
// joins a read in flight that started at its generation or later and from
// at or below its position, or waits for the next read. The answer is the
// page its own query would have returned at that read's snapshot: the
// events after its position below the horizon, in log order, the head and
// whether events are held back (see page). When the limit cut the shared
// read, the answer ends where the read ends (cut), and a request at or past
// that end waits for the next read.
//
// Subscriptions that catch up (their last page was full) read alone, with
// their filter in the query, as before.
type tailReads struct {
	s *Store

	mu       sync.Mutex
	waiting  []*tailRead
	running  bool       // a goroutine runs reads until none waits
	inflight *tailRound // the read running, nil between reads

	reads, answers atomic.Int64 // shared reads, and the requests they answered
}

// tailRead is one subscription's request.
type tailRead struct {
	after  eventstore.Position
	filter eventstore.Filter
	gen    uint64        // the wake-up generation the answer must be as fresh as
	done   chan struct{} // closed when p and err are set
	p      page
	err    error

	// Guarded by tailReads.mu:
	gone  bool       // the requester stopped waiting
	round *tailRound // the read answering it, once it joined one
}

// tailRound is one shared read and the requests it answers.
type tailRound struct {
	gen    uint64              // the listener's generation when it started
	after  eventstore.Position // where it reads from
	batch  []*tailRead
	left   int // requests of batch still waiting
	cancel context.CancelFunc
}

// read returns the page after after that filter selects, from a read at
// least as fresh as wake-up generation gen.
func (t *tailReads) read(ctx context.Context, after eventstore.Position, filter eventstore.Filter, gen uint64) (page, error) {
	r := &tailRead{after: after, filter: filter, gen: gen, done: make(chan struct{})}
	t.mu.Lock()
	switch f := t.inflight; {
	case f != nil && f.left > 0 && f.gen >= gen && !after.Less(f.after):
		// (A read whose requests all stopped waiting is being cancelled.)
		r.round = f
		f.batch = append(f.batch, r)
		f.left++
	default:
		t.waiting = append(t.waiting, r)
		if !t.running {
			t.running = true
			go t.run()
		}
	}
	t.mu.Unlock()
	select {
	case <-r.done:
		return r.p, r.err
	case <-ctx.Done():
		t.mu.Lock()
		r.gone = true
		if f := r.round; f != nil {
			// The read is for its requests: when all of them stopped
			// waiting (a database that holds the query), it stops too.
			if f.left--; f.left == 0 {
				f.cancel()
			}
		}
		t.mu.Unlock()
		return page{}, ctx.Err()
	}
}

// run reads for the waiting requests, one read after another, until none
// waits.
func (t *tailReads) run() {
	for {
		t.mu.Lock()
		f := &tailRound{gen: t.s.listener.generation()}
		for _, r := range t.waiting {
			if !r.gone {
				if len(f.batch) == 0 || r.after.Less(f.after) {
					f.after = r.after
				}
				f.batch = append(f.batch, r)
				r.round = f
			}
		}
		t.waiting = nil
		if len(f.batch) == 0 {
			t.running = false
			t.mu.Unlock()
			return
		}
		f.left = len(f.batch)
		ctx, cancel := t.s.withStore(context.Background())
		f.cancel = cancel
		t.inflight = f
		t.mu.Unlock()

		p, err := readPage(ctx, t.s.pool, f.after, eventstore.Filter{}, defaultPage)
		cancel()
		t.reads.Add(1)
		t.mu.Lock()
		t.inflight = nil
		batch := f.batch // no request joins f from here on
		t.mu.Unlock()
		t.answer(batch, p, err)
	}
}

// answer answers batch from p (or err), and puts back for the next read
// the requests at or past the end of a page its limit cut.
func (t *tailReads) answer(batch []*tailRead, p page, err error) {
	var later []*tailRead
	for _, r := range batch {
		switch {
		case err != nil:
			r.err = err
		case len(p.events) >= defaultPage && !r.after.Less(p.events[len(p.events)-1].Position):
			later = append(later, r)
			continue
		default:
			r.p = p.part(r.after, r.filter)
			t.answers.Add(1)
		}
		close(r.done)
	}
	if len(later) > 0 {
		t.mu.Lock()
		for _, r := range later {
			r.round = nil
		}
		t.waiting = append(later, t.waiting...)
		t.mu.Unlock()
	}
}

// part is the part of p, an unfiltered page, that a read after after
// with filter would have returned from the same snapshot. Its events are
// copies, their data in a buffer of the answer's own, so that no two
// subscriptions share memory.
func (p page) part(after eventstore.Position, filter eventstore.Filter) page {
	out := page{head: p.head, heldBack: p.heldBack}
	if len(p.events) >= defaultPage {
		// Cut by the limit: what follows the page is unknown.
		out.head, out.cut = p.events[len(p.events)-1].Position, true
	}
	size := 0
	var keep []int
	for i := range p.events {
		e := &p.events[i]
		if after.Less(e.Position) && filter.Match(e.Stream, e.Type) {
			keep = append(keep, i)
			size += len(e.Data)
		}
	}
	if len(keep) == 0 {
		return out
	}
	buf := make([]byte, 0, size)
	out.events = make([]eventstore.RecordedEvent, len(keep))
	for j, i := range keep {
		e := p.events[i]
		start := len(buf)
		buf = append(buf, e.Data...)
		e.Data = json.RawMessage(buf[start:len(buf):len(buf)])
		out.events[j] = e
	}
	return out
}

package postgres

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

const (
	// defaultLanes is how many group transactions a Store runs at once
	// (WithAppendLanes). A lane beyond the first starts only while a full
	// group (maxGroup appends) waits behind the running ones, and stops
	// when none does: single appends, however many, share one lane and
	// its large groups (a second lane splitting them measured slower in
	// BenchmarkAppendVsRawInsert, 2026-12-06 and -07, on slow and fast
	// disks alike), while large AppendMany calls, such as the processor's
	// batches of completions, each a group of its own, run side by side
	// instead of one after the other (PostgreSQL executes one statement on
	// one core).
	defaultLanes = 4
	// maxGroup is the most appends one group transaction takes; an
	// AppendMany call of more runs alone.
	maxGroup = 128
	// maxLinger bounds how long a lane waits for a group to fill (gather).
	maxLinger = 2 * time.Millisecond
)

// appendReq is one Append or AppendMany call waiting for a lane. A lane
// commits all of its parts in one transaction, or none of them.
type appendReq struct {
	ctx    context.Context
	parts  []appendPart
	single bool          // an Append: alone in its group, it runs appendStatement
	done   chan struct{} // closed when a lane stored the outcomes
	// err is set when the call as a whole failed: none of its parts was
	// stored.
	err error
}

// appendPart is one stream's append within a request.
type appendPart struct {
	stream   string
	expected eventstore.ExpectedVersion
	events   []eventstore.EventData // validated
	res      eventstore.AppendResult
	err      error // the append's own failure: nothing of it stored
}

// committer queues appends for at most lanes goroutines, each of which
// takes what is queued as one group and commits it in one transaction.
// While the lanes are busy appends queue, so the busier the store, the
// larger the groups: a queue of appends costs one commit (one WAL flush)
// and one round trip, not one each.
type committer struct {
	mu      sync.Mutex
	queue   []*appendReq  // oldest first
	grew    chan struct{} // closed and replaced when a request queues; nil until a lane waits
	parts   int           // appends queued: the parts of the requests in queue
	running int           // lanes running
	lanes   int
	// full is how many queued appends start a lane beside the running
	// ones (maxGroup; tests lower it to run small groups side by side).
	full int
}

// submit queues req and waits for its outcome. A call whose context ends
// while it is queued leaves the queue (nothing of it stored); one whose
// context ends while its group is being committed returns the context's
// error at once, and its appends may or may not be stored, as with a
// cancelled single statement.
func (s *Store) submit(req *appendReq) error {
	c := &s.commit
	if c.enqueue(req) {
		go s.lane()
	}
	select {
	case <-req.done:
		return req.err
	case <-req.ctx.Done():
	}
	c.mu.Lock()
	if i := slices.Index(c.queue, req); i >= 0 {
		c.queue = slices.Delete(c.queue, i, i+1)
		c.parts -= len(req.parts)
	}
	c.mu.Unlock()
	select {
	case <-req.done:
		return req.err
	default:
		return req.ctx.Err()
	}
}

// enqueue queues req and reports whether a lane must start for it: the
// first, or another (up to lanes) when a full group waits.
func (c *committer) enqueue(req *appendReq) (startLane bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queue = append(c.queue, req)
	c.parts += len(req.parts)
	if c.grew != nil {
		close(c.grew)
		c.grew = nil
	}
	if c.running == 0 || (c.running < c.lanes && c.parts >= c.full) {
		c.running++
		return true
	}
	return false
}

// lane commits groups until take stops it.
func (s *Store) lane() {
	var (
		last int           // calls in the last group
		took time.Duration // how long its commit took
	)
	for {
		s.commit.gather(last, min(took/4, maxLinger))
		group := s.commit.take()
		if group == nil {
			return
		}
		start := time.Now()
		s.commitGroup(group)
		last, took = len(group), time.Since(start)
	}
}

// gather lets a lane that just committed a group of last calls wait,
// before it takes the next group, until as many are queued again, for at
// most linger (the lane gives a quarter of the time that commit took, at
// most maxLinger): the callers it just answered are about to append again,
// and on a busy machine the next group would otherwise leave them behind
// and be half as large, costing a commit (a WAL flush) more. With nothing
// queued it returns at once: waiting would delay no one, and gain nothing.
func (c *committer) gather(last int, linger time.Duration) {
	if last < 2 {
		return
	}
	deadline := time.Now().Add(linger)
	for {
		c.mu.Lock()
		n := len(c.queue)
		if n == 0 || n >= last {
			c.mu.Unlock()
			return
		}
		if c.grew == nil {
			c.grew = make(chan struct{})
		}
		grew := c.grew
		c.mu.Unlock()
		wait := time.Until(deadline)
		if wait <= 0 {
			return
		}
		timer := time.NewTimer(wait)
		select {
		case <-grew:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// take removes a group from the queue: the oldest request and, in arrival
// order, those that fit beside it (at most maxGroup appends; no stream and
// no event ID twice in a group, so that each stream has at most one append
// per transaction and one statement can judge them all). With nothing
// queued, or, while other lanes run, less than a full group, it stops the
// lane and returns nil.
func (c *committer) take() []*appendReq {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 || (c.running > 1 && c.parts < c.full) {
		c.running--
		return nil
	}
	group := []*appendReq{c.queue[0]}
	parts := len(c.queue[0].parts)
	streams := make(map[string]bool, maxGroup)
	ids := make(map[uuid.UUID]bool, maxGroup)
	claim := func(r *appendReq) {
		for _, p := range r.parts {
			streams[p.stream] = true
			for _, e := range p.events {
				ids[e.ID] = true
			}
		}
	}
	fits := func(r *appendReq) bool {
		if parts+len(r.parts) > maxGroup {
			return false
		}
		for _, p := range r.parts {
			if streams[p.stream] {
				return false
			}
			for _, e := range p.events {
				if ids[e.ID] {
					return false
				}
			}
		}
		return true
	}
	claim(c.queue[0])
	rest := c.queue[:0]
	for _, r := range c.queue[1:] {
		if parts < maxGroup && fits(r) {
			group = append(group, r)
			parts += len(r.parts)
			claim(r)
			continue
		}
		rest = append(rest, r)
	}
	clear(c.queue[len(rest):])
	c.queue = rest
	c.parts -= parts
	return group
}

// commitGroup commits group and reports each request's outcome. The
// transaction runs under a context that ends when the store closes or
// when every request of the group has stopped waiting, not when one of
// them does: interrupting it would fail the others.
func (s *Store) commitGroup(group []*appendReq) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	var waiting atomic.Int32
	waiting.Store(int32(len(group)))
	active := make([]*appendReq, 0, len(group))
	for _, r := range group {
		stop := context.AfterFunc(r.ctx, func() {
			if waiting.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
		if r.err = r.ctx.Err(); r.err == nil {
			active = append(active, r)
		}
	}
	if len(active) > 0 && s.run(ctx, active) {
		s.announce()
	}
	for _, r := range group {
		close(r.done)
	}
}

// run stores reqs in one transaction and reports whether it wrote
// anything. A request alone with one append runs the one-statement path.
// When PostgreSQL refuses a value (a data exception) the statement cannot
// say whose it was: each request then runs alone, and an AppendMany call
// that still fails gets the error (ErrInvalid) for the whole call.
func (s *Store) run(ctx context.Context, reqs []*appendReq) (stored bool) {
	if len(reqs) == 1 && reqs[0].single {
		p := &reqs[0].parts[0]
		p.res, p.err = s.append(ctx, s.pool, p.stream, p.expected, p.events, s.notifyInTx)
		if p.err != nil && !ownFailure(p.err) {
			reqs[0].err, p.err = s.opError(ctx, p.err), nil
		}
		return p.err == nil && reqs[0].err == nil && !p.res.Duplicate
	}
	var parts []*appendPart
	for _, r := range reqs {
		for i := range r.parts {
			parts = append(parts, &r.parts[i])
		}
	}
	stored, err := s.appendGroup(ctx, parts)
	if err == nil {
		return stored
	}
	if isDataException(err) && len(reqs) > 1 {
		for _, r := range reqs {
			stored = s.run(ctx, []*appendReq{r}) || stored
		}
		return stored
	}
	if isDataException(err) {
		err = invalidValue(err)
	}
	for _, r := range reqs {
		r.err = s.opError(ctx, err)
	}
	return false
}

package postgres

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
)

const (
	// defaultLanes is how many group transactions a Store runs at once
	// (WithAppendLanes).
	defaultLanes = 2
	// maxGroup is the most appends one group transaction takes; an
	// AppendMany call of more runs alone.
	maxGroup = 128
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
	queue   []*appendReq // oldest first
	running int          // lanes running
	lanes   int
}

// submit queues req and waits for its outcome. A call whose context ends
// while it is queued leaves the queue (nothing of it stored); one whose
// context ends while its group is being committed returns the context's
// error at once, and its appends may or may not be stored, as with a
// cancelled single statement.
func (s *Store) submit(req *appendReq) error {
	c := &s.commit
	c.mu.Lock()
	c.queue = append(c.queue, req)
	if c.running < c.lanes {
		c.running++
		go s.lane()
	}
	c.mu.Unlock()
	select {
	case <-req.done:
		return req.err
	case <-req.ctx.Done():
	}
	c.mu.Lock()
	c.queue = slices.DeleteFunc(c.queue, func(r *appendReq) bool { return r == req })
	c.mu.Unlock()
	select {
	case <-req.done:
		return req.err
	default:
		return req.ctx.Err()
	}
}

// lane commits groups until the queue is empty.
func (s *Store) lane() {
	for {
		group := s.commit.take()
		if group == nil {
			return
		}
		s.commitGroup(group)
	}
}

// take removes a group from the queue: the oldest request and, in arrival
// order, those that fit beside it (at most maxGroup appends; no stream and
// no event ID twice in a group, so that each stream has at most one append
// per transaction and one statement can judge them all). With nothing
// queued it stops the lane and returns nil.
func (c *committer) take() []*appendReq {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
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

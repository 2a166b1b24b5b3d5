package sqlite

import (
	"context"
	"slices"
	"sync"

	"github.com/taskqueue/taskqueue/eventstore"
)

const (
	// appendsAhead is how many append transactions may take the writer,
	// one after the other, while a WriteTx transaction waits for it:
	// appends go first, but a steady stream of them never holds a
	// projection batch back for long.
	appendsAhead = 32
	// maxGroup is the most appends committed in one transaction (an
	// AppendMany call of more leads a group of its own).
	maxGroup = 64
)

// writeGate orders the Store's transactions on its single writer
// connection. database/sql hands a released connection to a random waiter,
// so with one connection an append could wait behind any number of later
// transactions; the gate instead lets appends through in arrival order and
// before the other transactions (WriteTx: projection batches, the
// processor's claims), which wait in arrival order too, with at most
// appendsAhead append transactions passing a waiting one. The append that
// gets the writer leads a group: it takes the appends queued behind it (up
// to maxGroup in all, an AppendMany call counting one per stream) and
// commits them in one transaction, so that a queue of appends costs one
// commit and one hand-over, not one each.
//
// Whoever holds the gate is the only user of the connection through the
// Store, so database/sql never chooses. The gate only orders: the
// connection limit of one is still what keeps writers apart (a transaction
// begun on WriteDB directly waits for the connection without taking the
// gate).
type writeGate struct {
	mu      sync.Mutex
	busy    bool
	appends []*appendReq    // waiting appends, oldest first
	others  []chan struct{} // waiting WriteTx transactions, oldest first
	passed  int             // append transactions let through while others waited
}

// appendReq is one Append or AppendMany call waiting for the writer. A
// leader commits all of its parts in the same transaction as one another,
// or none of them.
type appendReq struct {
	ctx   context.Context
	parts []appendPart

	lead chan struct{} // closed when the request is to lead a group
	done chan struct{} // closed when a leader stored the outcomes
	// err is set when the call as a whole failed (its context ended, the
	// transaction failed): then none of its parts was stored.
	err error
}

// appendPart is one stream's append within a request.
type appendPart struct {
	stream   string
	expected eventstore.ExpectedVersion
	events   []eventstore.EventData // validated
	from     int64                  // while a group holds it: the version its events follow
	res      eventstore.AppendResult
	err      error // the append's own failure: nothing of it stored
}

// enterAppend waits until req leads a group (lead: the caller holds the
// gate, runs the group and calls leave) or another leader has done it (its
// outcome is in req). A request whose context ends while it is queued
// leaves the queue with the context's error; once a leader has taken it,
// it waits for the outcome, which is then known for sure.
func (g *writeGate) enterAppend(req *appendReq) (lead bool, err error) {
	g.mu.Lock()
	if !g.busy {
		g.busy = true
		g.mu.Unlock()
		return true, nil
	}
	g.appends = append(g.appends, req)
	g.mu.Unlock()
	select {
	case <-req.lead:
		return true, nil
	case <-req.done:
		return false, nil
	case <-req.ctx.Done():
	}
	g.mu.Lock()
	n := len(g.appends)
	g.appends = slices.DeleteFunc(g.appends, func(r *appendReq) bool { return r == req })
	queued := n != len(g.appends)
	g.mu.Unlock()
	if queued {
		return false, req.ctx.Err()
	}
	select {
	case <-req.lead:
		return true, nil // leads with its own request failing on its context
	case <-req.done:
		return false, nil
	}
}

// followers takes the requests queued behind a leader, oldest first, as
// long as their parts add up to at most n.
func (g *writeGate) followers(n int) []*appendReq {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := 0
	for k < len(g.appends) && len(g.appends[k].parts) <= n {
		n -= len(g.appends[k].parts)
		k++
	}
	out := slices.Clone(g.appends[:k])
	g.appends = slices.Delete(g.appends, 0, k)
	return out
}

// enter waits for the writer as a WriteTx transaction. On nil, the caller
// holds the gate and must call leave.
func (g *writeGate) enter(ctx context.Context) error {
	g.mu.Lock()
	if !g.busy {
		g.busy = true
		g.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	g.others = append(g.others, ready)
	g.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	n := len(g.others)
	g.others = slices.DeleteFunc(g.others, func(c chan struct{}) bool { return c == ready })
	queued := n != len(g.others)
	g.mu.Unlock()
	if !queued { // leave handed it over meanwhile: pass it on
		g.leave()
	}
	return ctx.Err()
}

// leave hands the writer to the next waiter, or frees it.
func (g *writeGate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case len(g.others) > 0 && (len(g.appends) == 0 || g.passed >= appendsAhead):
		close(g.others[0])
		g.others, g.passed = g.others[1:], 0
	case len(g.appends) > 0:
		close(g.appends[0].lead)
		g.appends = g.appends[1:]
		if len(g.others) > 0 {
			g.passed++
		}
	default:
		g.busy, g.passed = false, 0
	}
}

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
	// maxGroup is the most appends committed in one transaction.
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
// to maxGroup in all) and commits them in one transaction, so that a queue
// of appends costs one commit and one hand-over, not one each.
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

// appendReq is one Append waiting for the writer.
type appendReq struct {
	ctx      context.Context
	stream   string
	expected eventstore.ExpectedVersion
	events   []eventstore.EventData

	lead chan struct{} // closed when the request is to lead a group
	done chan struct{} // closed when a leader stored res and err
	res  eventstore.AppendResult
	err  error
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

// followers takes up to n appends queued behind a leader.
func (g *writeGate) followers(n int) []*appendReq {
	g.mu.Lock()
	defer g.mu.Unlock()
	n = min(n, len(g.appends))
	out := slices.Clone(g.appends[:n])
	g.appends = slices.Delete(g.appends, 0, n)
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

package sqlite

import (
	"context"
	"slices"
	"sync"
)

// appendsAhead is how many appends may take the writer, one after the
// other, while a WriteTx transaction waits for it: appends go first, but a
// steady stream of them never holds a projection batch back for long.
const appendsAhead = 32

// writeGate orders the Store's transactions on its single writer
// connection. database/sql hands a released connection to a random waiter,
// so with one connection an append could wait behind any number of later
// transactions; the gate instead lets appends through in arrival order and
// before the other transactions (WriteTx: projection batches, the
// processor's claims), which wait in arrival order too, with at most
// appendsAhead appends passing a waiting one. Whoever holds the gate is the
// only user of the connection through the Store, so database/sql never
// chooses. The gate only orders: the connection limit of one is still what
// keeps writers apart (a transaction begun on WriteDB directly waits for
// the connection without taking the gate).
type writeGate struct {
	mu      sync.Mutex
	busy    bool
	appends []chan struct{} // waiting appends, oldest first
	others  []chan struct{} // waiting WriteTx transactions, oldest first
	passed  int             // appends let through while others waited
}

// enter waits for the writer: as an append when first, else as another
// transaction. On nil, the caller holds the gate and must call leave.
func (g *writeGate) enter(ctx context.Context, first bool) error {
	g.mu.Lock()
	if !g.busy {
		g.busy = true
		g.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	if first {
		g.appends = append(g.appends, ready)
	} else {
		g.others = append(g.others, ready)
	}
	g.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	waiting := len(g.appends) + len(g.others)
	g.appends = slices.DeleteFunc(g.appends, func(c chan struct{}) bool { return c == ready })
	g.others = slices.DeleteFunc(g.others, func(c chan struct{}) bool { return c == ready })
	granted := waiting == len(g.appends)+len(g.others) // no longer queued: leave handed it over
	g.mu.Unlock()
	if granted {
		g.leave()
	}
	return ctx.Err()
}

// leave hands the writer to the next waiter, or frees it.
func (g *writeGate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	var next chan struct{}
	switch {
	case len(g.others) > 0 && (len(g.appends) == 0 || g.passed >= appendsAhead):
		next, g.others, g.passed = g.others[0], g.others[1:], 0
	case len(g.appends) > 0:
		next, g.appends = g.appends[0], g.appends[1:]
		if len(g.others) > 0 {
			g.passed++
		}
	default:
		g.busy, g.passed = false, 0
		return
	}
	close(next)
}

package projections

import (
	"context"
	"sync"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
)

// pacer keeps projections that read the same pages of the log together,
// so that a page a slower one has yet to use is not pushed out of a cache
// by faster ones and read and decoded again: the catch-up's pages
// (pageCache) and the bulk build's (bulkScan). Each says where it is, a
// place P in what they read (a position in the log, a page's number). The
// zero value is ready to use; safe for concurrent use.
type pacer[P place[P]] struct {
	mu    sync.Mutex
	marks map[*worker]paceMark[P]
	// moved is closed and replaced when one of them moves on or leaves.
	moved chan struct{}
}

// place is where a projection reading pages is.
type place[P any] interface {
	comparable
	// lag is how far p is behind ahead (0 when it is not).
	lag(ahead P) int64
}

// logPlace is a place in the log (the catch-up's pages).
type logPlace eventstore.Position

func (p logPlace) lag(ahead logPlace) int64 {
	return seqLag(eventstore.Position(p), eventstore.Position(ahead))
}

// pagePlace is a page's number in a walk of the log (the bulk build's
// pages).
type pagePlace int64

func (p pagePlace) lag(ahead pagePlace) int64 { return max(0, int64(ahead-p)) }

// paceMark is where a projection is (the page it reads or applies) and
// since when.
type paceMark[P place[P]] struct {
	at    P
	since time.Time
}

// pace records that w is about to read the page at at. When lead > 0 it
// then waits while another projection is more than lead behind at, but no
// more than far (one further behind reads other pages anyway), unless that
// one has not moved on for limit (its database stalls, say): it holds no
// one back for longer. It returns ctx's error if ctx ends while it waits.
func (p *pacer[P]) pace(ctx context.Context, w *worker, at P, lead, far int64, limit time.Duration) error {
	for {
		p.mu.Lock()
		now := time.Now()
		if p.marks == nil {
			p.marks = map[*worker]paceMark[P]{}
		}
		if m, ok := p.marks[w]; !ok || m.at != at {
			p.marks[w] = paceMark[P]{at: at, since: now}
			p.wake()
		}
		var wait time.Duration // until the slower one is taken for stalled
		for other, m := range p.marks {
			if lag := m.at.lag(at); lead > 0 && other != w && lag > lead && lag <= far {
				wait = max(wait, m.since.Add(limit).Sub(now))
			}
		}
		moved := p.moved
		p.mu.Unlock()
		if wait <= 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-moved:
			t.Stop()
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// leave says that w no longer reads these pages.
func (p *pacer[P]) leave(w *worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.marks[w]; ok {
		delete(p.marks, w)
		p.wake()
	}
}

// wake tells the projections waiting in pace that one moved; p.mu is held.
func (p *pacer[P]) wake() {
	if p.moved != nil {
		close(p.moved)
	}
	p.moved = make(chan struct{})
}

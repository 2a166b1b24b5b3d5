package postgres

import (
	"context"
	"testing"
	"time"
)

// gather waits for as many calls as the last group had, for at most its
// linger, and not at all with nothing queued.
func TestGather(t *testing.T) {
	req := func() *appendReq { return &appendReq{ctx: context.Background(), done: make(chan struct{})} }
	queued := func(c *committer) int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queue)
	}

	var c committer
	start := time.Now()
	c.gather(3, time.Hour)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("gather with nothing queued waited %v", d)
	}

	c.enqueue(req())
	go func() {
		time.Sleep(20 * time.Millisecond)
		c.enqueue(req())
		c.enqueue(req())
	}()
	start = time.Now()
	c.gather(3, time.Hour)
	if n := queued(&c); n != 3 {
		t.Fatalf("gather returned after %v with %d queued, want 3", time.Since(start), n)
	}

	start = time.Now()
	c.gather(5, 30*time.Millisecond)
	if d := time.Since(start); d < 30*time.Millisecond || d > 5*time.Second {
		t.Fatalf("gather for 5 with 3 queued returned after %v, want after its 30 ms linger", d)
	}
}

package postgres

import (
	"context"
	"fmt"
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

// The first lane starts with the first call; another (up to lanes) only
// while a full group waits, and a lane beside others stops once none does.
func TestLanesStartForFullGroups(t *testing.T) {
	req := func(parts int) *appendReq {
		r := &appendReq{ctx: context.Background(), done: make(chan struct{})}
		for i := range parts {
			r.parts = append(r.parts, appendPart{stream: fmt.Sprint("s", i, "-", time.Now().UnixNano())})
		}
		return r
	}
	c := committer{lanes: 3, full: maxGroup}
	if !c.enqueue(req(1)) {
		t.Fatal("the first call started no lane")
	}
	for i := range 100 {
		if c.enqueue(req(1)) {
			t.Fatalf("single call %d started a second lane with %d appends queued", i+2, c.parts)
		}
	}
	if g := c.take(); len(g) != 101 {
		t.Fatalf("the lane took %d calls, want all 101", len(g))
	}
	if c.enqueue(req(100)) {
		t.Fatal("100 appends queued started a second lane")
	}
	if !c.enqueue(req(100)) {
		t.Fatal("200 appends queued (a full group waiting) started no second lane")
	}
	if c.running != 2 {
		t.Fatalf("%d lanes running, want 2", c.running)
	}
	if g := c.take(); len(g) != 1 || c.parts != 100 {
		t.Fatalf("a lane took %d calls and left %d appends, want 1 call and 100", len(g), c.parts)
	}
	if g := c.take(); g != nil || c.running != 1 {
		t.Fatalf("a lane beside another with less than a full group queued took %d calls (%d running), want it stopped", len(g), c.running)
	}
	if g := c.take(); len(g) != 1 || c.parts != 0 {
		t.Fatalf("the last lane took %d calls and left %d appends, want the last call", len(g), c.parts)
	}
	if g := c.take(); g != nil || c.running != 0 {
		t.Fatalf("with nothing queued the lane took %d calls (%d running), want it stopped", len(g), c.running)
	}
}

// Package queuecachetest is the contract of the queue cache and the
// progress entries: one suite that both implementations run unchanged (no
// Redis: nothing kept; Redis, and a Redis Cluster: kept), the way
// eventstore/storetest is the event store's.
package queuecachetest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/queuecache"
)

// Backend is one implementation, fresh for one test.
type Backend struct {
	Cache    *queuecache.Cache
	Progress *queuecache.ProgressStore
	// Keeps is whether the implementation keeps what is put (Redis), or
	// nothing (without Redis: every Get loads, every progress is a miss).
	Keeps bool
}

// Setup returns a fresh backend for t.
type Setup func(t *testing.T) Backend

// Run runs the suite against setup.
func Run(t *testing.T, setup Setup) {
	for _, tc := range []struct {
		name string
		run  func(*testing.T, Backend)
	}{
		{"ReadsThroughAndKeepsTheNewest", readsThroughAndKeepsTheNewest},
		{"InvalidateMakesTheNextGetLoad", invalidate},
		{"LoadErrorsAreReturnedAndNotCached", loadErrors},
		{"ProgressKeepsTheNewest", progress},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, setup(t)) })
	}
}

// View is a queue view of player at version, its head task version done.
func View(player string, version int64) domain.QueueView {
	return domain.QueueView{PlayerID: domain.PlayerID(player), Version: version, Running: true, Limit: 10,
		Tasks: []domain.TaskView{{TaskID: "t1", Type: "chop-wood", Count: 5, Done: int(version)}}}
}

// loader counts its loads and answers the read model's version.
type loader struct {
	loads   atomic.Int32
	version atomic.Int64
}

func (l *loader) load(player string) func(context.Context) (domain.QueueView, error) {
	return func(context.Context) (domain.QueueView, error) {
		l.loads.Add(1)
		return View(player, l.version.Load()), nil
	}
}

func get(t *testing.T, b Backend, player string, l *loader) domain.QueueView {
	t.Helper()
	v, err := b.Cache.Get(context.Background(), domain.PlayerID(player), l.load(player))
	if err != nil {
		t.Fatalf("get %s: %v", player, err)
	}
	if v.PlayerID != domain.PlayerID(player) {
		t.Fatalf("get %s answered the view of %s", player, v.PlayerID)
	}
	return v
}

// The cache reads through; once a view is kept, Gets answer it without
// loading; an older view put late never replaces a newer one, and a view
// of another player is never answered.
func readsThroughAndKeepsTheNewest(t *testing.T, b Backend) {
	ctx := context.Background()
	var l loader
	l.version.Store(3)
	if v := get(t, b, "alice", &l); v.Version != 3 || l.loads.Load() != 1 {
		t.Fatalf("first get: version %d after %d loads, want 3 after 1", v.Version, l.loads.Load())
	}
	l.version.Store(9)
	v := get(t, b, "alice", &l)
	switch {
	case b.Keeps && (v.Version != 3 || l.loads.Load() != 1):
		t.Fatalf("second get: version %d after %d loads, want the kept 3 after 1", v.Version, l.loads.Load())
	case !b.Keeps && (v.Version != 9 || l.loads.Load() != 2):
		t.Fatalf("second get keeping nothing: version %d after %d loads, want a load of 9", v.Version, l.loads.Load())
	}
	b.Cache.Put(ctx, View("alice", 12))
	b.Cache.Put(ctx, View("alice", 11)) // a late writer
	b.Cache.Put(ctx, View("bob", 40))
	v = get(t, b, "alice", &l)
	switch {
	case b.Keeps && (v.Version != 12 || v.Tasks[0].Done != 12):
		t.Fatalf("after puts of 12 then 11: version %d, want 12", v.Version)
	case !b.Keeps && v.Version != 9:
		t.Fatalf("keeping nothing: version %d, want the loaded 9", v.Version)
	}
}

// Invalidate drops the views of the players named, several at once (their
// keys in several slots of a cluster), and no one else's.
func invalidate(t *testing.T, b Backend) {
	ctx := context.Background()
	var l loader
	l.version.Store(1)
	for _, p := range []string{"bob", "carol", "dave"} {
		b.Cache.Put(ctx, View(p, 1))
	}
	b.Cache.Invalidate(ctx, "bob", "carol")
	l.version.Store(2)
	for _, p := range []string{"bob", "carol"} {
		if v := get(t, b, p, &l); v.Version != 2 {
			t.Fatalf("%s after invalidate: version %d, want the loaded 2", p, v.Version)
		}
	}
	before := l.loads.Load()
	v := get(t, b, "dave", &l)
	if b.Keeps && (v.Version != 1 || l.loads.Load() != before) {
		t.Fatalf("dave, not invalidated: version %d, %d loads; want the kept 1", v.Version, l.loads.Load()-before)
	}
	if !b.Keeps && l.loads.Load() != before+1 {
		t.Fatal("keeping nothing, a get did not load")
	}
}

// A failed load is the Get's error, and nothing is kept of it.
func loadErrors(t *testing.T, b Backend) {
	ctx := context.Background()
	boom := errors.New("read model away")
	_, err := b.Cache.Get(ctx, "erin", func(context.Context) (domain.QueueView, error) { return domain.QueueView{}, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("get with a failing load: %v, want its error", err)
	}
	var l loader
	l.version.Store(7)
	if v := get(t, b, "erin", &l); v.Version != 7 || l.loads.Load() != 1 {
		t.Fatalf("after a failed load: version %d after %d loads, want a load of 7", v.Version, l.loads.Load())
	}
}

// Progress entries: a miss for a player never put; the newest put, with
// the head task's counts, whether put alone or through Changes (the hub's
// change sink), which also puts the view in the cache.
func progress(t *testing.T, b Backend) {
	ctx := context.Background()
	if _, ok, err := b.Progress.Get(ctx, "alice"); ok || err != nil {
		t.Fatalf("progress of a player never put: %v, %v", ok, err)
	}
	b.Progress.Put(ctx, View("alice", 5))
	b.Progress.Put(ctx, View("alice", 4)) // a late writer
	p, ok, err := b.Progress.Get(ctx, "alice")
	switch {
	case err != nil:
		t.Fatal(err)
	case b.Keeps && (!ok || p.PlayerID != "alice" || p.Version != 5 || !p.Running || p.Done != 5 || p.Count != 5):
		t.Fatalf("progress after puts of 5 then 4: %+v, %v; want version 5, 5 of 5", p, ok)
	case !b.Keeps && ok:
		t.Fatalf("keeping nothing, progress %+v", p)
	}
	queuecache.Changes{Cache: b.Cache, Progress: b.Progress}.QueueChanged(ctx, View("alice", 12))
	p, ok, _ = b.Progress.Get(ctx, "alice")
	if b.Keeps != (ok && p.Version == 12) {
		t.Fatalf("progress after a change to 12: %+v, %v (keeps %v)", p, ok, b.Keeps)
	}
	var l loader
	l.version.Store(1)
	if v := get(t, b, "alice", &l); b.Keeps && v.Version != 12 {
		t.Fatalf("the cache after a change to 12: version %d", v.Version)
	}
	if got := queuecache.ProgressOf(domain.QueueView{PlayerID: "bob", Version: 2}); got.Done != 0 || got.Count != 0 || got.Version != 2 {
		t.Fatalf("progress of an empty queue: %+v", got)
	}
}

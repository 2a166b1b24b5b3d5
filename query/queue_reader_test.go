package query

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/taskqueue/taskqueue/domain"
)

// versionCache is an in-process QueueCache that keeps the newest view of
// each player, as the Redis cache does.
type versionCache struct {
	mu    sync.Mutex
	views map[domain.PlayerID]domain.QueueView
}

func (c *versionCache) Get(ctx context.Context, p domain.PlayerID, load func(context.Context) (domain.QueueView, error)) (domain.QueueView, error) {
	c.mu.Lock()
	v, ok := c.views[p]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := load(ctx)
	if err == nil {
		c.Put(ctx, v)
	}
	return v, err
}

func (c *versionCache) Put(_ context.Context, v domain.QueueView) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.views[v.PlayerID]; !ok || old.Version < v.Version {
		c.views[v.PlayerID] = v
	}
}

// A cached view older than the version the client wrote is not answered:
// the reader loads again and caches the newer view.
func TestQueueReaderLoadsPastAnOlderCachedView(t *testing.T) {
	ctx := context.Background()
	p := domain.PlayerID("p1")
	cache := &versionCache{views: map[domain.PlayerID]domain.QueueView{p: {PlayerID: p, Version: 3}}}
	rm := &snapshots{pairs: [][2]int64{{7, 7}}}
	r := QueueReader{Cache: cache, View: NewQueueViewHandler(rm, nil, 0)}

	v, err := r.Queue(ctx, p, 0)
	if err != nil || v.Version != 3 || rm.reads != 0 {
		t.Fatalf("without minVersion: version %d, %d reads, %v; want the cached version 3 and no read", v.Version, rm.reads, err)
	}
	v, err = r.Queue(ctx, p, 5)
	if err != nil || v.Version != 7 {
		t.Fatalf("minVersion 5 over a cached version 3: version %d, %v; want 7", v.Version, err)
	}
	if got := cache.views[p].Version; got != 7 {
		t.Fatalf("cached version after the read: %d, want 7", got)
	}
}

// Without a read model the aggregate is the latest state: a version it has
// not reached does not exist, and the read says so at once.
func TestQueueReaderWithoutReadModelRefusesAFutureVersion(t *testing.T) {
	loads := 0
	r := QueueReader{Aggregate: func(_ context.Context, p domain.PlayerID) (domain.QueueView, error) {
		loads++
		return domain.QueueView{PlayerID: p, Version: 4}, nil
	}}
	if v, err := r.Queue(context.Background(), "p1", 4); err != nil || v.Version != 4 {
		t.Fatalf("minVersion 4: version %d, %v", v.Version, err)
	}
	if _, err := r.Queue(context.Background(), "p1", 5); !errors.Is(err, ErrStale) {
		t.Fatalf("minVersion 5 over an aggregate at 4: %v, want ErrStale", err)
	}
	if loads != 2 {
		t.Fatalf("%d loads, want 2 (no cache)", loads)
	}
}

type failingSnapshots struct{ err error }

func (f failingSnapshots) QueueSnapshot(context.Context, domain.PlayerID) (QueueSnapshot, error) {
	return QueueSnapshot{}, f.err
}

// A read model that fails because the store behind it was closed says so
// (the web layer answers 503 for it); other failures are left as they are.
func TestQueueReaderMarksAClosedStore(t *testing.T) {
	errClosed := errors.New("store closed")
	errDB := errors.New("database is closed")
	closed := false
	r := QueueReader{
		View: NewQueueViewHandler(failingSnapshots{errDB}, nil, 0),
		Closed: func(context.Context) error {
			if closed {
				return errClosed
			}
			return nil
		},
	}
	if _, err := r.Queue(context.Background(), "p1", 0); !errors.Is(err, errDB) || errors.Is(err, errClosed) {
		t.Fatalf("store open: %v, want the read's own error only", err)
	}
	closed = true
	if _, err := r.Queue(context.Background(), "p1", 0); !errors.Is(err, errDB) || !errors.Is(err, errClosed) {
		t.Fatalf("store closed: %v, want both the read's error and the store's", err)
	}
}

package queuecache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/redisx"
)

// ProgressTTL is how long a player's progress entry lives.
const ProgressTTL = time.Hour

// Progress is a player's current repetition for cheap polling,
// progress:{playerId} (TTL ProgressTTL).
type Progress struct {
	PlayerID   domain.PlayerID        `json:"playerId"`
	Version    int64                  `json:"version"`
	Running    bool                   `json:"running"`
	Repetition *domain.RepetitionView `json:"repetition"`
	// Done and Count are the head task's, 0 when the queue is empty.
	Done  int `json:"done"`
	Count int `json:"count"`
}

// ProgressOf extracts the progress of a queue view.
func ProgressOf(v domain.QueueView) Progress {
	p := Progress{PlayerID: v.PlayerID, Version: v.Version, Running: v.Running, Repetition: v.Repetition}
	if len(v.Tasks) > 0 {
		p.Done, p.Count = v.Tasks[0].Done, v.Tasks[0].Count
	}
	return p
}

// ProgressStore keeps Progress in Redis. Without Redis (nil client or down)
// Put does nothing and Get reports a miss: callers fall back to the queue
// view. Safe for concurrent use.
type ProgressStore struct{ c *redisx.Client }

// NewProgressStore returns the store on c (nil: always a miss).
func NewProgressStore(c *redisx.Client) *ProgressStore { return &ProgressStore{c: c} }

const progressFamily = "progress:"

// Put stores the progress of v unless a newer one is stored.
func (s *ProgressStore) Put(ctx context.Context, v domain.QueueView) {
	if s.c == nil || !s.c.Up() {
		return
	}
	b, err := json.Marshal(ProgressOf(v))
	if err != nil {
		return
	}
	cctx, cancel := s.c.Bound(ctx)
	defer cancel()
	err = putNewer.Run(cctx, s.c.Redis(), []string{s.c.Key(progressFamily, string(v.PlayerID))}, v.Version, b, ProgressTTL.Milliseconds()).Err()
	s.c.Observe(ctx, err)
}

// Get returns the stored progress of player, and false on a miss.
func (s *ProgressStore) Get(ctx context.Context, player domain.PlayerID) (Progress, bool, error) {
	if s.c == nil || !s.c.Up() {
		return Progress{}, false, nil
	}
	cctx, cancel := s.c.Bound(ctx)
	defer cancel()
	b, err := s.c.Redis().Get(cctx, s.c.Key(progressFamily, string(player))).Bytes()
	s.c.Observe(ctx, err)
	if errors.Is(err, redis.Nil) {
		return Progress{}, false, nil
	}
	if err != nil {
		return Progress{}, false, nil // down: a miss
	}
	var p Progress
	if err := json.Unmarshal(b, &p); err != nil {
		return Progress{}, false, fmt.Errorf("decode progress of %s: %w", player, err)
	}
	return p, true, nil
}

// Changes keeps the queue cache and the progress entries up to date
// with every change the realtime hub dispatches (realtime.ChangeSink).
type Changes struct {
	Cache    *Cache
	Progress *ProgressStore
}

// QueueChanged stores v in the cache and its progress.
func (q Changes) QueueChanged(ctx context.Context, v domain.QueueView) {
	if q.Cache != nil {
		q.Cache.Put(ctx, v)
	}
	if q.Progress != nil {
		q.Progress.Put(ctx, v)
	}
}

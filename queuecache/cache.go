// Package queuecache owns what Redis keeps of queue views for cheap
// reads: the read-through cache of queue views (Cache, queue:{playerId})
// and the players' progress entries (ProgressStore, progress:{playerId}),
// both written only when newer. Without Redis (or while it is down) both
// keep nothing: every Get loads, every progress is a miss. Neither is a
// source of truth.
//
// The contract both implementations pass: package queuecachetest.
package queuecache

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/redisx"
)

// TTL is how long a cached queue view lives.
const TTL = 5 * time.Minute

// Cache is the read-through cache of queue views, queue:{playerId}
// (TTL 5 min), in front of whatever reads a queue (the read model or the
// command side). Writes are conditional on the view's version, so a slow
// writer never replaces a newer view with an older one. Without Redis (nil
// client, or Redis down) every Get loads. Safe for concurrent use.
type Cache struct {
	c *redisx.Client
}

// New returns the cache on c; a nil c caches nothing.
func New(c *redisx.Client) *Cache {
	qc := &Cache{c: c}
	if c != nil {
		// Invalidations were lost while Redis was down: drop every view.
		c.OnUp(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := qc.flush(ctx); err != nil {
				c.Logger().Warn("flush cached queue views after redis came back", "err", err)
			}
		})
	}
	return qc
}

// queueFamily and progressFamily are the key families (redisx's
// ForgetPlayer deletes a player's keys: rename both or neither).
const queueFamily = "queue:"

// putNewer stores ARGV[2] at KEYS[1] for ARGV[3] ms unless the stored view
// has a version >= ARGV[1].
var putNewer = redis.NewScript(`
local old = redis.call('GET', KEYS[1])
if old then
  local ok, v = pcall(cjson.decode, old)
  if ok and type(v) == 'table' and tonumber(v['version']) and tonumber(v['version']) >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`)

// Get returns the cached view of player, or loads it and caches it.
func (q *Cache) Get(ctx context.Context, player domain.PlayerID, load func(context.Context) (domain.QueueView, error)) (domain.QueueView, error) {
	if q.c != nil && q.c.Up() {
		cctx, cancel := q.c.Bound(ctx)
		b, err := q.c.Redis().Get(cctx, q.c.Key(queueFamily, string(player))).Bytes()
		cancel()
		q.c.Observe(ctx, err)
		if err == nil {
			var v domain.QueueView
			if json.Unmarshal(b, &v) == nil && v.PlayerID == player {
				return v, nil
			}
		}
	}
	v, err := load(ctx)
	if err != nil {
		return domain.QueueView{}, err
	}
	q.Put(ctx, v)
	return v, nil
}

// Put caches v unless a view of the same or a newer version is cached.
// Errors only take Redis down; the cache is an optimization.
func (q *Cache) Put(ctx context.Context, v domain.QueueView) {
	if q.c == nil || !q.c.Up() {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	cctx, cancel := q.c.Bound(ctx)
	defer cancel()
	err = putNewer.Run(cctx, q.c.Redis(), []string{q.c.Key(queueFamily, string(v.PlayerID))}, v.Version, b, TTL.Milliseconds()).Err()
	q.c.Observe(ctx, err)
}

// Invalidate drops the cached views of players (after a change whose view
// the caller does not have).
func (q *Cache) Invalidate(ctx context.Context, players ...domain.PlayerID) {
	if q.c == nil || !q.c.Up() || len(players) == 0 {
		return
	}
	keys := make([]string, len(players))
	for i, p := range players {
		keys[i] = q.c.Key(queueFamily, string(p))
	}
	cctx, cancel := q.c.Bound(ctx)
	defer cancel()
	q.c.Observe(ctx, q.c.Del(cctx, keys))
}

// flush deletes every cached view (on every master of a cluster).
func (q *Cache) flush(ctx context.Context) error {
	return q.c.EachServer(ctx, func(ctx context.Context, rdb redis.UniversalClient) error {
		iter := rdb.Scan(ctx, 0, q.c.Key(queueFamily, "*"), 1000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) == 1000 {
				if err := q.c.Del(ctx, batch); err != nil {
					return fmt.Errorf("delete cached views: %w", err)
				}
				batch = batch[:0]
			}
		}
		if err := iter.Err(); err != nil {
			return fmt.Errorf("scan cached views: %w", err)
		}
		if len(batch) > 0 {
			return q.c.Del(ctx, batch)
		}
		return nil
	})
}

package redisx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config configures a Client.
type Config struct {
	// URL is the Redis server (redis://, rediss:// or unix://) or Redis
	// Cluster (redis+cluster://host:port,host:port, rediss+cluster://; see
	// ParseTarget). Required.
	URL string
	// Prefix starts every key and channel (tests give each their own).
	// Default "" (the key families of the package doc as they are).
	Prefix string
	// Timeout bounds dialing and every command, so that a Redis that went
	// away costs a request at most this much before the fallback takes
	// over. Default 500 ms.
	Timeout time.Duration
	// HealthInterval is how often a Redis that is down is pinged to notice
	// it is back. Default 1 s.
	HealthInterval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Timeout <= 0 {
		c.Timeout = 500 * time.Millisecond
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Client is the Redis connection every role shares, with its health: while
// Redis is down (a command failed for a reason other than a missing key),
// Up reports false, the roles use their in-process fallbacks without
// trying Redis, and a background ping brings it back. Going down and coming
// back are each logged once. Safe for concurrent use.
type Client struct {
	rdb     redis.UniversalClient
	target  Target
	tuning  Tuning
	prefix  string
	timeout time.Duration
	log     *slog.Logger
	health  time.Duration

	up      atomic.Bool
	mu      sync.Mutex
	onUp    []func()
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
}

// Open connects to cfg.URL. Redis need not be reachable yet: the client
// starts down and comes up when the first ping answers.
func Open(cfg Config) (*Client, error) {
	cfg.setDefaults()
	routeLibraryLog()
	target, err := ParseTarget(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("open redis (TASKQUEUE_REDIS_URL): %w", err)
	}
	// One dial, not go-redis's 5 (500 ms each, 100 ms apart: a Redis behind
	// a partition held every request 2.9 s, past a short request deadline,
	// so that the caller's context ended first and Redis was never marked
	// down; TestSeveralHosts in cmd/taskqueue found it).
	tuning := Tuning{Timeout: cfg.Timeout, PoolSize: 32, DialerRetries: 1}
	c := &Client{
		rdb: target.NewClient(tuning), target: target, tuning: tuning, prefix: cfg.Prefix, timeout: cfg.Timeout, health: cfg.HealthInterval,
		log: cfg.Logger.With("component", "redis"), stop: make(chan struct{}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	err = c.Ping(ctx)
	cancel()
	if err == nil {
		c.up.Store(true)
	} else {
		c.log.Warn("redis is down; serving from in-process fallbacks until it answers", "err", err)
	}
	c.wg.Add(1)
	go c.watch()
	return c, nil
}

// Close stops the health check and closes the connections.
func (c *Client) Close() error {
	c.stopped.Do(func() { close(c.stop) })
	c.wg.Wait()
	return c.rdb.Close()
}

// Redis returns the underlying client (for roles of other packages, e.g.
// the watermill Redis Streams bus): a *redis.Client, or a
// *redis.ClusterClient on a Redis Cluster.
func (c *Client) Redis() redis.UniversalClient { return c.rdb }

// Cluster reports whether the client talks to a Redis Cluster.
func (c *Client) Cluster() bool { return c.target.Cluster() }

// NewPool opens another client of the same server or cluster, with the
// same timeouts and size connections (per node). The caller closes it.
func (c *Client) NewPool(size int) redis.UniversalClient {
	tu := c.tuning
	tu.PoolSize = size
	return c.target.NewClient(tu)
}

// Ping asks the server, or every master of a cluster (a cluster is up
// when each of its masters answers: a key's role fails on the one that
// does not), then writes the key health (a minute's TTL), on a cluster a
// key health{n} on each master: every role writes, and a Redis that
// answers but refuses writes (its maxmemory reached under noeviction, or
// unable to save to its disk) serves none of them.
func (c *Client) Ping(ctx context.Context) error {
	cc, ok := c.rdb.(*redis.ClusterClient)
	if !ok {
		if err := c.rdb.Ping(ctx).Err(); err != nil {
			return err
		}
		return c.rdb.Set(ctx, c.Key("health", ""), "1", time.Minute).Err()
	}
	if err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.Ping(ctx).Err() }); err != nil {
		return err
	}
	//lint:ignore SA1019 CLUSTER SLOTS answers on Redis 6 too; CLUSTER SHARDS needs 7
	ranges, err := cc.ClusterSlots(ctx).Result() //nolint:staticcheck // as above
	if err != nil {
		return err
	}
	// One key in the first slot of each master's (go-redis sends each
	// write to its slot's master).
	_, err = cc.Pipelined(ctx, func(p redis.Pipeliner) error {
		written := map[string]bool{}
		for _, r := range ranges {
			if len(r.Nodes) == 0 || written[r.Nodes[0].Addr] {
				continue
			}
			written[r.Nodes[0].Addr] = true
			p.Set(ctx, c.Key("health", slotTag(r.Start)), "1", time.Minute)
		}
		return nil
	})
	return err
}

// Up reports whether Redis is believed to be reachable.
func (c *Client) Up() bool { return c.up.Load() }

// Prefix is Config.Prefix: it starts every key and channel.
func (c *Client) Prefix() string { return c.prefix }

// Logger is the client's logger (component "redis").
func (c *Client) Logger() *slog.Logger { return c.log }

// Key returns the key of a family member, e.g. Key("queue:", "alice"):
// the prefix, the family, the ID.
func (c *Client) Key(family, id string) string { return c.prefix + family + id }

// Del deletes keys: with one DEL on one server; on a cluster with one DEL
// per key in a pipeline (go-redis sends each to its slot's master), since
// a DEL of keys in several slots fails with CROSSSLOT.
func (c *Client) Del(ctx context.Context, keys []string) error {
	if !c.Cluster() {
		return c.rdb.Del(ctx, keys...).Err()
	}
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, k)
		}
		return nil
	})
	return err
}

// EachServer calls f with the server, or with each master of a cluster
// (what a SCAN needs: a cluster client sends it to one node only).
func (c *Client) EachServer(ctx context.Context, f func(context.Context, redis.UniversalClient) error) error {
	if cc, ok := c.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return f(ctx, m) })
	}
	return f(ctx, c.rdb)
}

// OnUp registers f to run (in its own goroutine) every time Redis comes
// back after being down.
func (c *Client) OnUp(f func()) {
	c.mu.Lock()
	c.onUp = append(c.onUp, f)
	c.mu.Unlock()
}

// Bound returns ctx bounded by the client's Timeout, for one call of a
// role: however go-redis spends it (waiting for a free connection, dialing,
// the round trip), a Redis behind a partition costs the call at most
// Timeout and the error, seen by Observe with the caller's own ctx still
// live, takes Redis down. Without it a call could outlast a short request
// deadline, and Observe then took the failure for the caller's own
// cancellation (TestSeveralHosts in cmd/taskqueue found it).
func (c *Client) Bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// Observe records the outcome of a role's command: an error other than a missing
// key (redis.Nil) or the caller's own cancellation takes Redis down.
func (c *Client) Observe(ctx context.Context, err error) {
	if err == nil || errors.Is(err, redis.Nil) || ctx.Err() != nil {
		return
	}
	if c.up.CompareAndSwap(true, false) {
		c.log.Warn("redis is down; serving from in-process fallbacks until it answers", "err", err)
	}
}

// watch pings while Redis is down and brings it back up.
func (c *Client) watch() {
	defer c.wg.Done()
	t := time.NewTicker(c.health)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if c.up.Load() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.health)
		err := c.Ping(ctx)
		cancel()
		if err != nil || !c.up.CompareAndSwap(false, true) {
			continue
		}
		c.log.Info("redis is back")
		c.mu.Lock()
		fs := append([]func(){}, c.onUp...)
		c.mu.Unlock()
		for _, f := range fs {
			go f()
		}
	}
}

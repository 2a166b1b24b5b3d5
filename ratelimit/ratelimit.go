// Package ratelimit owns the command rate limits (per player and per
// client address) that web's command limit asks: on Redis when the service
// has one, shared by every instance, else in-process. It decides only
// whether a command may run and when to retry; web answers 429.
//
// The contract every implementation passes: package ratelimittest.
package ratelimit

import (
	"context"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/redisx"
)

// Rate is a limit: Per requests per Period on average, with bursts of Burst.
type Rate struct {
	Per    int
	Period time.Duration
	Burst  int
}

// Config configures the command rate limits. A zero Rate means its
// default; a negative Per disables that limit.
type Config struct {
	// Player limits the commands of one player (by the token's subject).
	// Default 120 per minute, bursts of 20.
	Player Rate
	// IP limits the commands from one client address. Default 600 per
	// minute, bursts of 60.
	IP Rate
}

func (c *Config) setDefaults() {
	if c.Player.Per == 0 {
		c.Player = Rate{Per: 120, Period: time.Minute, Burst: 20}
	}
	if c.IP.Per == 0 {
		c.IP = Rate{Per: 600, Period: time.Minute, Burst: 60}
	}
	for _, r := range []*Rate{&c.Player, &c.IP} {
		if r.Period <= 0 {
			r.Period = time.Minute
		}
		if r.Burst <= 0 {
			r.Burst = max(1, r.Per)
		}
	}
}

// Limiter limits commands per player and per client address:
// {prefix}rate:ratelimit:{playerId} and {prefix}rate:ratelimit:ip:{address}
// in Redis (GCRA, through redis_rate, which adds its own "rate:" after the
// prefix: see prefixedScripts), shared by
// every instance; an in-process limiter of the same rates while Redis is
// absent or down (each instance then allows the rate on its own). Safe for
// concurrent use.
type Limiter struct {
	c     *redisx.Client
	rl    *redis_rate.Limiter
	cfg   Config
	local *localLimiter
	now   func() time.Time
}

// New returns the limiter on c (nil: in-process only).
func New(c *redisx.Client, cfg Config) *Limiter {
	cfg.setDefaults()
	l := &Limiter{c: c, cfg: cfg, local: newLocalLimiter(), now: time.Now}
	if c != nil {
		l.rl = redis_rate.NewLimiter(prefixedScripts{c.Redis(), c.Prefix()})
	}
	return l
}

// rateFamily is the key family after redis_rate's "rate:" (redisx's
// ForgetPlayer deletes a player's key: rename both or neither).
const rateFamily = "ratelimit:"

// Allow reports whether one more command of key ("player:alice" style
// keys are built by AllowPlayer and AllowIP) may run under r, and if not,
// when to retry.
func (l *Limiter) allow(ctx context.Context, key string, r Rate) (bool, time.Duration) {
	if r.Per < 0 {
		return true, 0
	}
	if l.rl != nil && l.c.Up() {
		cctx, cancel := l.c.Bound(ctx)
		res, err := l.rl.Allow(cctx, rateFamily+key, redis_rate.Limit{Rate: r.Per, Period: r.Period, Burst: r.Burst})
		cancel()
		l.c.Observe(ctx, err)
		if err == nil {
			return res.Allowed > 0, res.RetryAfter
		}
	}
	return l.local.allow(key, r, l.now())
}

// prefixedScripts is the part of a Redis client that redis_rate uses, with
// the configured prefix put in front of every key: redis_rate names its
// keys "rate:"+key itself, and every key the service writes must start
// with TASKQUEUE_REDIS_PREFIX.
type prefixedScripts struct {
	rdb    redis.UniversalClient
	prefix string
}

func (p prefixedScripts) keys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = p.prefix + k
	}
	return out
}

func (p prefixedScripts) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return p.rdb.Eval(ctx, script, p.keys(keys), args...)
}

func (p prefixedScripts) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return p.rdb.EvalSha(ctx, sha1, p.keys(keys), args...)
}

func (p prefixedScripts) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return p.rdb.EvalRO(ctx, script, p.keys(keys), args...)
}

func (p prefixedScripts) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return p.rdb.EvalShaRO(ctx, sha1, p.keys(keys), args...)
}

func (p prefixedScripts) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return p.rdb.ScriptExists(ctx, hashes...)
}

func (p prefixedScripts) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return p.rdb.ScriptLoad(ctx, script)
}

func (p prefixedScripts) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return p.rdb.Del(ctx, p.keys(keys)...)
}

// AllowPlayer checks the per-player limit.
func (l *Limiter) AllowPlayer(ctx context.Context, player string) (bool, time.Duration) {
	return l.allow(ctx, player, l.cfg.Player)
}

// AllowIP checks the per-address limit.
func (l *Limiter) AllowIP(ctx context.Context, ip string) (bool, time.Duration) {
	return l.allow(ctx, "ip:"+ip, l.cfg.IP)
}

// localLimiter is the in-process GCRA: per key, the theoretical arrival
// time of the next request. Keys idle for longer than their burst window
// are swept.
type localLimiter struct {
	mu        sync.Mutex
	tat       map[string]time.Time
	lastSweep time.Time
}

func newLocalLimiter() *localLimiter { return &localLimiter{tat: map[string]time.Time{}} }

func (l *localLimiter) allow(key string, r Rate, now time.Time) (bool, time.Duration) {
	interval := r.Period / time.Duration(r.Per)
	window := interval * time.Duration(r.Burst)
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > time.Minute {
		for k, t := range l.tat {
			if now.After(t) {
				delete(l.tat, k)
			}
		}
		l.lastSweep = now
	}
	tat := l.tat[key]
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(interval)
	if allowAt := next.Add(-window); allowAt.After(now) {
		return false, allowAt.Sub(now)
	}
	l.tat[key] = next
	return true, 0
}

// Package presence owns which instances of the fleet hold a player (have
// their socket, or wait out its grace period), on Redis, so that "the
// player went offline" is decided once for the whole fleet. Without Redis
// there is one instance, and the realtime hub decides alone.
//
// The contract it passes on one Redis server and on a Redis Cluster:
// package presencetest.
package presence

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/redisx"
)

// Presence defaults.
const (
	// TTL is how long an instance counts as alive after its last
	// heartbeat: a killed instance's players go offline about this long
	// after it stopped.
	TTL = 30 * time.Second
	// presenceSweepBatch bounds the players one sweep script handles.
	presenceSweepBatch = 200
)

const (
	presenceFamily   = "presence:"          // {player}: SET of instance IDs holding the player
	instancesKey     = "presence-instances" // ZSET instance ID → alive until (ms, Redis clock)
	instanceFamily   = "presence-instance:" // {instance}: SET of the players it holds
	presenceLuaClock = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- leave removes instance id from player; when no live instance holds the
-- player any more, it clears the player (dead holders included, so that
-- their sweep does not report the player again) and returns 1.
local function leave(p, id, player, now)
  local key = p .. 'presence:' .. player
  redis.call('SREM', key, id)
  redis.call('SREM', p .. 'presence-instance:' .. id, player)
  local members = redis.call('SMEMBERS', key)
  for _, m in ipairs(members) do
    local exp = redis.call('ZSCORE', p .. 'presence-instances', m)
    if exp and tonumber(exp) > now then return 0 end
  end
  for _, m in ipairs(members) do
    redis.call('SREM', p .. 'presence-instance:' .. m, player)
  end
  redis.call('DEL', key)
  return 1
end
`
)

// The scripts build their keys from the presence base (ARGV[1], see
// presenceBase) and are routed by KEYS[1], the presence-instances key: on
// a Redis Cluster every presence key carries one hash tag, so all of them
// live in that key's slot.
var (
	// presenceJoin: ARGV base, instance, player, ttl ms. Returns 1 when
	// the instance itself was not registered (new, swept or Redis lost its
	// data): the caller reconciles.
	presenceJoin = redis.NewScript(presenceLuaClock + `
local p, id, player = ARGV[1], ARGV[2], ARGV[3]
redis.call('SADD', p .. 'presence:' .. player, id)
redis.call('SADD', p .. 'presence-instance:' .. id, player)
return redis.call('ZADD', p .. 'presence-instances', now_ms() + tonumber(ARGV[4]), id)
`)
	// presenceHeartbeat: ARGV base, instance, ttl ms. Returns 1 when the
	// instance was not registered.
	presenceHeartbeat = redis.NewScript(presenceLuaClock + `
return redis.call('ZADD', ARGV[1] .. 'presence-instances', now_ms() + tonumber(ARGV[3]), ARGV[2])
`)
	// presenceLeave: ARGV base, instance, player. Returns 1 when no live
	// instance holds the player any more.
	presenceLeave = redis.NewScript(presenceLuaClock + `
return leave(ARGV[1], ARGV[2], ARGV[3], now_ms())
`)
	// presenceSweep: ARGV base, batch. Takes up to batch players of one
	// dead instance (alive-until passed); returns {instance, players no
	// live instance holds any more...}, or {} when no instance is dead. The
	// instance is forgotten once it holds nobody.
	presenceSweep = redis.NewScript(presenceLuaClock + `
local p = ARGV[1]
local now = now_ms()
local dead = redis.call('ZRANGEBYSCORE', p .. 'presence-instances', '-inf', now, 'LIMIT', 0, 1)
if #dead == 0 then return {} end
local id = dead[1]
local out = {id}
local players = redis.call('SPOP', p .. 'presence-instance:' .. id, tonumber(ARGV[2]))
for _, player in ipairs(players) do
  if leave(p, id, player, now) == 1 then table.insert(out, player) end
end
if redis.call('SCARD', p .. 'presence-instance:' .. id) == 0 then
  redis.call('ZREM', p .. 'presence-instances', id)
end
return out
`)
)

// Config configures a Presence.
type Config struct {
	// Instance names this process; default host-pid-random. Two live
	// processes must never share one.
	Instance string
	// TTL is how long the instance counts as alive after a heartbeat.
	// Default TTL.
	TTL time.Duration
	// Heartbeat is how often the instance renews itself and sweeps dead
	// instances. Default TTL/6.
	Heartbeat time.Duration
	// Gone is called (from the heartbeat goroutine) with every player of a
	// dead instance that no live instance holds: they left without their
	// instance saying so. at is when the sweep noticed.
	Gone func(ctx context.Context, player string, at time.Time)
	// Logger defaults to the client's.
	Logger *slog.Logger
}

// Presence counts which instances hold a player (have their socket, or
// wait out its grace period) across the fleet, so that "the player went
// offline" is decided once for all instances (realtime.Presence's
// PlayerOffline, via app). See docs/REALTIME.md, "Presence".
//
// Keys (after the prefix, and on a Redis Cluster after the hash tag
// {presence}: too; the other braces are placeholders): presence:{playerId}
// is the SET of instances holding the player; presence-instance:{instance}
// the SET of players an instance holds; presence-instances a ZSET of instances scored by when
// they stop counting as alive (Redis's clock, so instances' clocks do not
// matter). Liveness is per instance, not per player: a heartbeat renews
// one score however many players the instance holds.
//
// Join adds this instance to a player; Leave removes it and, in the same
// Lua script (atomic), reports whether any live instance still holds the
// player: of two instances leaving at once, exactly one hears "last".
// Every heartbeat also sweeps instances whose score passed (killed, or
// cut off from Redis for TTL): their players that no live instance holds
// are handed to Config.Gone, once (the sweep pops them atomically).
//
// Why this shape: a hash per player of instance → expiry would need every
// instance to renew every player it holds (10,000 writes per heartbeat);
// scoring instances instead makes a heartbeat one write and lets a leave
// tell a live holder from a dead one. The per-instance player set is what
// lets a survivor announce a dead instance's players, who would otherwise
// never go offline (nobody is left to run their grace period). Expiries use
// Redis's TIME, so skewed clocks between instances do not matter.
//
// While Redis is down, Join only remembers the player here and Leave
// answers "last" (this instance's own view: today's per-instance
// behaviour), with one warning per outage. When Redis answers again, or
// when this instance finds itself unregistered (Redis lost its data, or
// other instances swept it), it reconciles: what Redis says it holds
// becomes what it holds here. Safe for concurrent use; calls for one
// player must come in order (the realtime hub serialises them).
type Presence struct {
	c      *redisx.Client
	base   string   // presenceBase
	route  []string // KEYS of the scripts: the presence-instances key
	id     string
	ttl    time.Duration
	beat   time.Duration
	gone   func(ctx context.Context, player string, at time.Time)
	log    *slog.Logger
	warned atomic.Bool // the outage warning was logged

	// sync is held for writing while reconciling, for reading by Join and
	// Leave, so a reconcile never interleaves with them.
	sync sync.RWMutex
	mu   sync.Mutex
	held map[string]struct{}

	kick   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts the presence of this instance on c (required) and its
// heartbeat. Close stops the heartbeat; the instance's players are then
// swept by the others after TTL.
func New(c *redisx.Client, cfg Config) *Presence {
	if cfg.Instance == "" {
		host, _ := os.Hostname()
		cfg.Instance = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8])
	}
	if cfg.TTL <= 0 {
		cfg.TTL = TTL
	}
	if cfg.Heartbeat <= 0 || cfg.Heartbeat >= cfg.TTL {
		cfg.Heartbeat = cfg.TTL / 6
	}
	if cfg.Logger == nil {
		cfg.Logger = c.Logger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	base := presenceBase(c)
	p := &Presence{
		c: c, base: base, route: []string{base + instancesKey}, id: cfg.Instance, ttl: cfg.TTL, beat: cfg.Heartbeat, gone: cfg.Gone,
		log:  cfg.Logger.With("component", "presence", "instance", cfg.Instance),
		held: map[string]struct{}{}, kick: make(chan struct{}, 1), cancel: cancel,
	}
	c.OnUp(p.reconcileSoon)
	p.wg.Add(1)
	go p.run(ctx)
	return p
}

// Instance is this instance's ID.
func (p *Presence) Instance() string { return p.id }

// Close stops the heartbeat and the sweeps.
func (p *Presence) Close() {
	p.cancel()
	p.wg.Wait()
}

// presenceBase starts every presence key: the prefix on one server; on a
// Redis Cluster the prefix and the hash tag {presence}, since the scripts
// touch the keys of several players and instances at once and a cluster
// runs a script on the keys of one slot only.
func presenceBase(c *redisx.Client) string {
	if c.Cluster() {
		return c.Prefix() + presenceTag
	}
	return c.Prefix()
}

// presenceTag is the hash tag of the presence keys on a Redis Cluster.
const presenceTag = "{presence}:"

func (p *Presence) args(more ...any) []any {
	return append([]any{p.base, p.id}, more...)
}

// Join records that this instance holds player.
func (p *Presence) Join(ctx context.Context, player string) error {
	p.sync.RLock()
	defer p.sync.RUnlock()
	p.mu.Lock()
	p.held[player] = struct{}{}
	p.mu.Unlock()
	if !p.c.Up() {
		p.down(nil)
		return nil // reconciled when Redis answers
	}
	n, err := presenceJoin.Run(ctx, p.c.Redis(), p.route, p.args(player, p.ttl.Milliseconds())...).Int()
	p.c.Observe(ctx, err)
	if err != nil {
		p.down(err)
		return nil
	}
	if n == 1 {
		p.reconcileSoon()
	}
	return nil
}

// Leave records that this instance no longer holds player and reports
// whether it was the last live instance to hold them (the caller then
// announces the player offline). While Redis is down it answers true: this
// instance's own view.
func (p *Presence) Leave(ctx context.Context, player string) (last bool) {
	p.sync.RLock()
	defer p.sync.RUnlock()
	p.unhold(player)
	if !p.c.Up() {
		p.down(nil)
		return true
	}
	n, err := presenceLeave.Run(ctx, p.c.Redis(), p.route, p.args(player)...).Int()
	p.c.Observe(ctx, err)
	if err != nil {
		p.down(err)
		return true
	}
	return n == 1
}

// Forget erases player from the fleet's presence (forgetting a player:
// docs/API.md, "Forgetting a player"): the player's set and their place in
// every instance's set, on every instance at once, without player.offline.
// With Redis down it fails with an error wrapping faults.ErrUnavailable,
// and forgetting is retried.
func (p *Presence) Forget(ctx context.Context, player string) error {
	p.sync.RLock()
	defer p.sync.RUnlock()
	p.unhold(player)
	if !p.c.Up() {
		return fmt.Errorf("forget %s in presence: %w", player, faults.ErrUnavailable)
	}
	rdb := p.c.Redis()
	ids, err := rdb.ZRange(ctx, p.base+instancesKey, 0, -1).Result()
	for _, id := range ids {
		if err != nil {
			break
		}
		err = rdb.SRem(ctx, p.base+instanceFamily+id, player).Err()
	}
	if err == nil {
		err = rdb.Del(ctx, p.base+presenceFamily+player).Err()
	}
	p.c.Observe(ctx, err)
	if err != nil {
		return fmt.Errorf("forget %s in presence: %w", player, err)
	}
	return nil
}

// down warns, once per outage, that presence is decided per instance.
func (p *Presence) down(err error) {
	if p.warned.CompareAndSwap(false, true) {
		p.log.Warn("redis is down; players' presence is decided by this instance alone until it answers", "err", err)
	}
}

func (p *Presence) reconcileSoon() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// run heartbeats, sweeps and reconciles until Close.
func (p *Presence) run(ctx context.Context) {
	defer p.wg.Done()
	t := time.NewTicker(p.beat)
	defer t.Stop()
	p.heartbeat(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
			p.reconcile(ctx)
		case <-t.C:
			p.heartbeat(ctx)
		}
	}
}

// heartbeat renews this instance (reconciling when it was unregistered)
// and sweeps dead instances. Each call is bounded by a context of its own
// (cctx); its failures are observed with the run's ctx, so that a call
// that ran out of its own bound (a Redis that does not answer, or a
// stopped one while go-redis retries) takes Redis down instead of passing
// for the caller's cancellation (redisx.Client.Observe).
func (p *Presence) heartbeat(ctx context.Context) {
	if !p.c.Up() {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, p.beat)
	defer cancel()
	n, err := presenceHeartbeat.Run(cctx, p.c.Redis(), p.route, p.args(p.ttl.Milliseconds())...).Int()
	p.c.Observe(ctx, err)
	if err != nil {
		return
	}
	if n == 1 || p.warned.Load() {
		p.reconcile(ctx)
	}
	p.sweep(ctx)
}

// sweep hands the players of dead instances that nobody holds to Gone.
func (p *Presence) sweep(ctx context.Context) {
	for i := 0; i < 50 && ctx.Err() == nil; i++ {
		cctx, cancel := context.WithTimeout(ctx, p.beat)
		out, err := presenceSweep.Run(cctx, p.c.Redis(), p.route, p.base, presenceSweepBatch).StringSlice()
		p.c.Observe(ctx, err)
		cancel()
		if err != nil || len(out) == 0 {
			return
		}
		if len(out) > 1 {
			p.log.Info("swept the players of a dead instance", "dead", out[0], "offline", len(out)-1)
		}
		at := time.Now()
		for _, player := range out[1:] {
			if p.gone != nil {
				p.gone(ctx, player, at)
			}
		}
	}
}

// reconcile makes Redis hold exactly the players held here: after an
// outage (Joins and Leaves were not written), after Redis lost its data,
// or after other instances swept this one. Players left during an outage
// were announced offline then; they are removed without a second answer.
func (p *Presence) reconcile(ctx context.Context) {
	if !p.c.Up() {
		return
	}
	p.sync.Lock()
	defer p.sync.Unlock()
	cctx, cancel := context.WithTimeout(ctx, p.ttl/2)
	defer cancel()
	if err := presenceHeartbeat.Run(cctx, p.c.Redis(), p.route, p.args(p.ttl.Milliseconds())...).Err(); err != nil {
		p.c.Observe(ctx, err)
		return
	}
	inRedis, err := p.c.Redis().SMembers(cctx, p.base+instanceFamily+p.id).Result()
	p.c.Observe(ctx, err)
	if err != nil {
		return
	}
	p.mu.Lock()
	held := make(map[string]struct{}, len(p.held))
	for pl := range p.held {
		held[pl] = struct{}{}
	}
	p.mu.Unlock()
	for _, pl := range inRedis {
		if _, ok := held[pl]; ok {
			delete(held, pl)
			continue
		}
		if err := presenceLeave.Run(cctx, p.c.Redis(), p.route, p.args(pl)...).Err(); err != nil {
			p.c.Observe(ctx, err)
			return
		}
	}
	for pl := range held {
		if err := presenceJoin.Run(cctx, p.c.Redis(), p.route, p.args(pl, p.ttl.Milliseconds())...).Err(); err != nil {
			p.c.Observe(ctx, err)
			return
		}
	}
	p.warned.Store(false)
}

// unhold takes player out of what this instance holds.
func (p *Presence) unhold(player string) {
	p.mu.Lock()
	delete(p.held, player)
	p.mu.Unlock()
}

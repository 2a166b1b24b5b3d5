package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/presence"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/queuecache"
	"github.com/taskqueue/taskqueue/ratelimit"
	"github.com/taskqueue/taskqueue/redisx"
	"github.com/taskqueue/taskqueue/relay"
	"github.com/taskqueue/taskqueue/sessions"
	"github.com/taskqueue/taskqueue/sessions/sqlstore"
	"github.com/taskqueue/taskqueue/wakeups"
	"github.com/taskqueue/taskqueue/web"
)

// redisRoles are the Redis roles the app runs (packages sessions,
// ratelimit, queuecache, wakeups, presence): on Redis when
// TASKQUEUE_REDIS_URL is set, in-process otherwise (client nil).
type redisRoles struct {
	client   *redisx.Client
	sessions *sessions.Sessions
	limiter  *ratelimit.Limiter
	cache    *queuecache.Cache
	progress *queuecache.ProgressStore
	wakeups  *wakeups.Wakeups
	presence *fleetPresence
}

// openRedis builds the Redis roles of cfg; every closer it adds to
// closers runs at cleanup (in reverse order). Without Redis, sessions are
// kept in db (the read models' database) when it is not nil.
func openRedis(cfg Config, log *slog.Logger, cl *closers, db projections.DB) (*redisRoles, error) {
	r := &redisRoles{}
	if cfg.RedisURL != "" {
		c, err := redisx.Open(redisx.Config{URL: cfg.RedisURL, Prefix: cfg.RedisPrefix, Logger: log})
		if err != nil {
			return nil, err
		}
		r.client = c
		cl.add(func() { _ = c.Close() })
	}
	if r.client == nil && db != nil {
		r.sessions = sessions.NewDurable(sqlstore.New(db, sessions.TTL))
	} else {
		r.sessions = sessions.New(r.client)
	}
	cl.add(r.sessions.Close)
	r.limiter = ratelimit.New(r.client, limits(cfg))
	r.cache, r.progress = queuecache.New(r.client), queuecache.NewProgressStore(r.client)
	if r.client != nil {
		r.wakeups = wakeups.New(r.client)
		cl.add(r.wakeups.Close)
		pub, err := relay.NewIntegrationPublisher(r.client.Redis(),
			watermill.NewSlogLogger(log.With("component", "presence")))
		if err != nil {
			return nil, fmt.Errorf("open the presence publisher: %w", err)
		}
		cl.add(func() { _ = pub.Close() })
		r.presence = newFleetPresence(r.client, pub, TopicPrefix(cfg), presence.Config{Logger: log})
		cl.add(r.presence.shared.Close)
	}
	return r, nil
}

// ready is the /readyz check of Redis, when configured: optional, since
// every role has an in-process fallback (a Redis outage degrades the
// fleet: caches, limits and sessions per instance; it does not stop it).
// The processor's command streams, which need Redis, answer for
// themselves in the processor's check.
func (r *redisRoles) ready() []web.ReadinessCheck {
	if r.client == nil {
		return nil
	}
	c := r.client
	return []web.ReadinessCheck{{Name: "redis", Optional: true, Check: func(ctx context.Context) error {
		if err := c.Ping(ctx); err != nil {
			return fmt.Errorf("redis does not answer or refuses writes (serving from in-process fallbacks): %w", err)
		}
		return nil
	}}}
}

// sessionStore is the sessions as the web layer's refresh and logout see
// them: a session that is gone is unauthorized.
type sessionStore struct{ s *sessions.Sessions }

func (s sessionStore) Refresh(ctx context.Context, sid string) (string, auth.Role, error) {
	sess, err := s.s.Refresh(ctx, sid)
	if errors.Is(err, sessions.ErrNoSession) {
		return "", "", fmt.Errorf("%w: %w", auth.ErrUnauthorized, err)
	}
	return sess.PlayerID, sess.Role, err
}

func (s sessionStore) Revoke(ctx context.Context, sid string) error { return s.s.Revoke(ctx, sid) }

// limits turns the per-minute settings into the limiter's rates: bursts of
// a sixth (player) and a tenth (address) of the minute's rate, as
// package ratelimit's defaults (120/20 and 600/60).
func limits(cfg Config) ratelimit.Config {
	rate := func(perMinute, burstDiv int) ratelimit.Rate {
		if perMinute < 0 {
			return ratelimit.Rate{Per: -1}
		}
		return ratelimit.Rate{Per: perMinute, Period: time.Minute, Burst: max(1, perMinute/burstDiv)}
	}
	return ratelimit.Config{Player: rate(cfg.RateLimitPlayer, 6), IP: rate(cfg.RateLimitIP, 10)}
}

// fleetPresence tells other services that a player went offline
// (player.offline on the integration topics, Redis streams) for the
// realtime hub (realtime.Presence): offline means no instance of the fleet
// holds the player's socket any more, which presence.Presence decides
// (docs/REALTIME.md, "Presence"). Coming online publishes nothing; it
// counts this instance in.
type fleetPresence struct {
	pub    message.Publisher
	prefix string
	shared *presence.Presence
	log    *slog.Logger
}

// newFleetPresence starts the shared presence of this instance on c; the
// players of dead instances are published offline with no last position.
func newFleetPresence(c *redisx.Client, pub message.Publisher, prefix string, cfg presence.Config) *fleetPresence {
	p := &fleetPresence{pub: pub, prefix: prefix, log: cfg.Logger}
	if p.log == nil {
		p.log = slog.Default()
	}
	cfg.Gone = func(_ context.Context, player string, at time.Time) {
		if err := relay.PublishPlayerOffline(p.pub, p.prefix, player, at, eventstore.Position{}, ""); err != nil {
			p.log.Warn("publish presence", "player", player, "online", false, "err", err)
		}
	}
	p.shared = presence.New(c, cfg)
	return p
}

func (p *fleetPresence) PlayerOnline(ctx context.Context, player domain.PlayerID, _ time.Time) error {
	return p.shared.Join(ctx, string(player))
}

func (p *fleetPresence) PlayerOffline(ctx context.Context, player domain.PlayerID, at time.Time, last eventstore.Position) error {
	if !p.shared.Leave(ctx, string(player)) {
		return nil // another instance holds the player
	}
	return relay.PublishPlayerOffline(p.pub, p.prefix, string(player), at, last, "")
}

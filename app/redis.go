package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/processor"
	"github.com/taskqueue/taskqueue/redisx"
)

// redisRoles are the roles of package redisx the app runs: on Redis when
// TASKQUEUE_REDIS_URL is set, in-process otherwise (client nil).
type redisRoles struct {
	client   *redisx.Client
	sessions *redisx.Sessions
	limiter  *redisx.Limiter
	cache    *redisx.QueueCache
	progress *redisx.ProgressStore
	wakeups  *redisx.Wakeups
	presence *presence
}

// openRedis builds the Redis roles of cfg; every closer it adds to
// closers runs at cleanup (in reverse order).
func openRedis(cfg Config, log *slog.Logger, closers *[]func()) (*redisRoles, error) {
	r := &redisRoles{}
	if cfg.RedisURL != "" {
		c, err := redisx.Open(redisx.Config{URL: cfg.RedisURL, Prefix: cfg.RedisPrefix, Logger: log})
		if err != nil {
			return nil, err
		}
		r.client = c
		*closers = append(*closers, func() { _ = c.Close() })
	}
	r.sessions = redisx.NewSessions(r.client)
	*closers = append(*closers, r.sessions.Close)
	r.limiter = redisx.NewLimiter(r.client, limits(cfg))
	r.cache, r.progress = redisx.NewQueueCache(r.client), redisx.NewProgressStore(r.client)
	if r.client != nil {
		r.wakeups = redisx.NewWakeups(r.client)
		*closers = append(*closers, r.wakeups.Close)
		pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: keepOpen{r.client.Redis()}, DefaultMaxlen: processor.IntegrationStreamMaxlen},
			watermill.NewSlogLogger(log.With("component", "presence")))
		if err != nil {
			return nil, fmt.Errorf("open the presence publisher: %w", err)
		}
		*closers = append(*closers, func() { _ = pub.Close() })
		r.presence = &presence{pub: pub, prefix: TopicPrefix(cfg)}
	}
	return r, nil
}

// limits turns the per-minute settings into the limiter's rates: bursts of
// a sixth (player) and a tenth (address) of the minute's rate, as
// redisx's defaults (120/20 and 600/60).
func limits(cfg Config) redisx.LimitsConfig {
	rate := func(perMinute, burstDiv int) redisx.Rate {
		if perMinute < 0 {
			return redisx.Rate{Per: -1}
		}
		return redisx.Rate{Per: perMinute, Period: time.Minute, Burst: max(1, perMinute/burstDiv)}
	}
	return redisx.LimitsConfig{Player: rate(cfg.RateLimitPlayer, 6), IP: rate(cfg.RateLimitIP, 10)}
}

// presence tells other services that a player went offline
// (player.offline on the integration topics, Redis streams) for the
// realtime hub (realtime.Presence). Coming online publishes nothing.
type presence struct {
	pub    message.Publisher
	prefix string
}

func (p *presence) PlayerOnline(context.Context, domain.PlayerID, time.Time) error { return nil }

func (p *presence) PlayerOffline(_ context.Context, player domain.PlayerID, at time.Time, last eventstore.Position) error {
	return processor.PublishPlayerOffline(p.pub, p.prefix, string(player), at, last, "")
}

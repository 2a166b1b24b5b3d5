package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/ops"
	"github.com/taskqueue/taskqueue/processor"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/realtime"
	"github.com/taskqueue/taskqueue/relay"
	"github.com/taskqueue/taskqueue/web"
)

// keepers are the components of this process that keep something of a
// player besides the log and the Redis roles; each is nil when it does not
// run here (an operator command runs no hub and no command side).
type keepers struct {
	store       eventstore.Store
	log         *slog.Logger
	projections *projections.Runner
	processor   *processor.Processor
	realtime    *realtime.Hub
	commands    *command.Handlers
}

// forgetting wires ops.ForgetPlayer to everything of this process that
// keeps a player: the log, the sessions, this instance's sockets, the read
// models of every runner here (the read side's and, when the processor
// runs here, processor_schedule; else the schedule's rows alone), the
// command side's cached queues, the queue cache, Redis, and the player's
// earlier integration messages (Redis streams, PostgreSQL outbox); and the
// integration bus for player.forgotten (Redis streams, else the PostgreSQL
// outbox, else none: logged). It is built after every component it names.
func forgetting(k keepers, rr *redisRoles, readModels projections.DB, pool *pgxpool.Pool, cfg Config, cl *closers) (ops.Forgetting, error) {
	f := ops.Forgetting{
		Store: k.store,
		Sessions: func(ctx context.Context, p domain.PlayerID) (int, error) {
			return rr.sessions.RevokePlayer(ctx, string(p))
		},
		Caches: []func(context.Context, domain.PlayerID) error{
			func(ctx context.Context, p domain.PlayerID) error { rr.cache.Invalidate(ctx, p); return nil },
			rr.client.ForgetPlayer,
		},
	}
	if k.realtime != nil {
		f.Sockets = k.realtime.ForgetPlayer
	}
	if k.commands != nil {
		f.Caches = append(f.Caches, func(_ context.Context, p domain.PlayerID) error { k.commands.Queues.Forget(p); return nil })
	}
	if rr.presence != nil {
		// Out of the fleet's presence, without player.offline (the hubs
		// announce nothing for the sockets they closed).
		f.Caches = append(f.Caches, func(ctx context.Context, p domain.PlayerID) error {
			return rr.presence.shared.Forget(ctx, string(p))
		})
	}
	if k.projections != nil {
		f.ReadModels = append(f.ReadModels, k.projections.Forget)
	}
	if k.processor != nil {
		f.ReadModels = append(f.ReadModels, k.processor.Runner().Forget)
	}
	if k.processor == nil && readModels != nil {
		// The processor runs elsewhere: its schedule is in this database.
		f.ReadModels = append(f.ReadModels, func(ctx context.Context, p domain.PlayerID, _ eventstore.Position) (projections.ForgetResult, error) {
			return projections.ForgetOutside(ctx, readModels, processor.Schedule{}, p)
		})
	}
	prefix := TopicPrefix(cfg)
	var topics []string
	for _, typ := range relay.IntegrationTypes {
		if typ != relay.TypePlayerForgotten {
			topics = append(topics, relay.Topic(prefix, typ))
		}
	}
	if rr.client != nil {
		f.Caches = append(f.Caches, func(ctx context.Context, p domain.PlayerID) error {
			if _, err := processor.ForgetInCommandStreams(ctx, rr.client.Redis(), prefix, string(p)); err != nil {
				return err
			}
			_, err := relay.ForgetInStreams(ctx, rr.client.Redis(), topics, string(p))
			return err
		})
	}
	if pool != nil {
		f.Caches = append(f.Caches, func(ctx context.Context, p domain.PlayerID) error {
			_, err := relay.ForgetInOutbox(ctx, pool, topics, string(p))
			return err
		})
	}
	pub, err := integrationPublisher(rr, pool, k.log)
	if err != nil || pub == nil {
		return f, err
	}
	cl.add(func() { _ = pub.Close() })
	f.Publish = func(ctx context.Context, p domain.PlayerID, at time.Time, events int64) error {
		if err := relay.PublishPlayerForgotten(pub, prefix, string(p), at, events, web.RequestIDFrom(ctx)); err != nil {
			return err
		}
		if pool != nil && rr.client == nil {
			return relay.RefuseAnalystOutbox(ctx, pool, relay.Topic(prefix, relay.TypePlayerForgotten))
		}
		return nil
	}
	return f, nil
}

// integrationPublisher returns a publisher of integration events on Redis
// streams, else into the PostgreSQL outbox, else nil (logged).
func integrationPublisher(rr *redisRoles, pool *pgxpool.Pool, log *slog.Logger) (message.Publisher, error) {
	wlog := watermill.NewSlogLogger(log.With("component", "forget-publisher"))
	switch {
	case rr.client != nil:
		return relay.NewIntegrationPublisher(rr.client.Redis(), wlog)
	case pool != nil:
		return relay.NewOutboxPublisher(pool, wlog)
	}
	log.Info("player.forgotten is not published: integration events need Redis (TASKQUEUE_REDIS_URL) or PostgreSQL (docs/EVENTS.md)")
	return nil, nil
}

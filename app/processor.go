package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/metrics"
	"github.com/taskqueue/taskqueue/processor"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/redisx"
	"github.com/taskqueue/taskqueue/relay"
	"github.com/taskqueue/taskqueue/web"
)

// TopicPrefix is the prefix of the processor's watermill topics (its
// command streams and the integration events, docs/EVENTS.md):
// TASKQUEUE_REDIS_PREFIX followed by "taskqueue", so that deployments
// (and test runs) sharing a Redis server keep their streams apart.
func TopicPrefix(cfg Config) string { return cfg.RedisPrefix + "taskqueue" }

// startProcessor runs the processor (the schedule of due repetitions and
// the due loop that completes them) on db until the returned stop is
// called. With Redis (rc not nil) its commands travel on Redis streams
// shared by every instance, and the relay of integration events runs too,
// on the one instance that holds the relay lease at a time; without Redis
// the relay does not run (nothing outside this process could consume a
// GoChannel), which is logged once. stop stops claiming, lets the
// commands in flight finish, releases the claims and the lease. queues,
// when not nil, is this process's command-side cache, which the
// processor's completions then share (processor.Config.Queues).
func startProcessor(cfg Config, store eventstore.Store, db projections.DB, outbox *pgxpool.Pool, commands command.Config, queues *command.Queues, rc *redisx.Client, obs faults.Observer, log *slog.Logger) (_ *processor.Processor, _ *relay.Relay, _ func(), err error) {
	var rdb redis.UniversalClient
	var own redis.UniversalClient
	if rc != nil {
		// A pool of its own: each command partition's subscriber holds a
		// connection through every blocking read, which would leave the
		// API's pool (sessions, rate limits, cache) short.
		own = rc.NewPool(processorRedisPool)
		rdb = own
		defer func() {
			if err != nil {
				_ = own.Close()
			}
		}()
	}
	p, err := processor.New(processor.Config{
		Store:       store,
		DB:          db,
		Commands:    commands,
		Queues:      queues,
		OfflineCap:  cfg.OfflineCap,
		Redis:       rdb,
		TopicPrefix: TopicPrefix(cfg),
		Observer:    obs,
		Logger:      log,
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("start the processor: %w", err)
	}
	var rel *relay.Relay
	var relayPub interface{ Close() error }
	if rdb != nil {
		pub, err := relay.NewIntegrationPublisher(rdb,
			watermill.NewSlogLogger(log.With("component", "relay-publisher")))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("start the relay: %w", err)
		}
		relayPub = pub
		rel, err = relay.New(relay.Config{
			Store: store, DB: db, Publisher: pub, TopicPrefix: TopicPrefix(cfg), Observer: obs, Logger: log.With("component", "relay"),
		})
		if err != nil {
			_ = pub.Close()
			return nil, nil, nil, fmt.Errorf("start the relay: %w", err)
		}
	} else if outbox != nil {
		// Each batch and its checkpoint in one transaction (relay.Config.Outbox).
		rel, err = relay.New(relay.Config{
			Store: store, DB: db, Outbox: outbox, TopicPrefix: TopicPrefix(cfg), Observer: obs, Logger: log.With("component", "relay"),
		})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("start the relay: %w", err)
		}
		log.Info("integration events are published into the PostgreSQL outbox (tables watermill_<topic>; docs/EVENTS.md)")
	} else {
		log.Info("integration events are not published: the relay needs Redis (TASKQUEUE_REDIS_URL) or PostgreSQL (docs/EVENTS.md)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := p.Run(ctx); err != nil {
			log.Error("processor stopped", "err", err)
		}
	})
	if rel != nil && outbox != nil && rdb == nil {
		wg.Go(func() { sweepOutbox(ctx, outbox, TopicPrefix(cfg), log) })
	}
	if rel != nil {
		wg.Go(func() {
			err := relay.RunLeased(ctx, relay.LeaseConfig{
				DB: db, Name: relay.LeaseName, Owner: p.Owner(), Observer: obs, Logger: log,
			}, rel.Run)
			if err != nil {
				log.Error("relay stopped", "err", err)
			}
		})
	}
	return p, rel, func() {
		cancel()
		wg.Wait()
		if relayPub != nil {
			_ = relayPub.Close()
		}
		if own != nil {
			_ = own.Close()
		}
	}, nil
}

// relayLag is the metrics source of r, nil without one.
func relayLag(r *relay.Relay) func(context.Context) (eventstore.Position, time.Duration, error) {
	if r == nil {
		return nil
	}
	return func(ctx context.Context) (eventstore.Position, time.Duration, error) {
		return r.Lag(ctx, time.Now())
	}
}

// processorRedisPool is the pool size of the processor's Redis client:
// two subscribers per partition (completions, offline stops), the dead
// letters, the publishers and the relay, with room to spare (per node on
// a Redis Cluster).
const processorRedisPool = 64

// remoteDeadLetters is the dead letter queue of processors that run in
// other processes: listed from db; retried onto their Redis command
// streams when rc is set (a publisher closed at cleanup), else Retry
// answers processor.ErrNotRunning.
func remoteDeadLetters(db projections.DB, rc *redisx.Client, cl *closers) (*processor.DeadLetters, error) {
	dl := processor.NewDeadLetters(db, nil)
	if rc == nil {
		return dl, nil
	}
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: keepOpen{rc.Redis()}}, watermill.NopLogger{})
	if err != nil {
		return nil, fmt.Errorf("open the dead-letter retry publisher: %w", err)
	}
	cl.add(func() { _ = pub.Close() })
	return dl.WithPublisher(pub), nil
}

// keepOpen hands a shared Redis client to watermill-redisstream, whose
// publishers close their client when they close: the client belongs to
// the app (its redisx.Client closes it last).
type keepOpen struct{ redis.UniversalClient }

func (keepOpen) Close() error { return nil }

// ProcessorApp is `taskqueue processor`: the processor and the relay
// without the API, with a small HTTP handler for probes and scraping.
type ProcessorApp struct {
	// Config is the configuration it was built from, defaults set.
	Config Config
	// Handler serves GET /healthz, /readyz and /metrics only.
	Handler http.Handler
	// Processor completes due repetitions.
	Processor *processor.Processor
	// Store is the event log.
	Store eventstore.Store
	// DB holds the processor's tables.
	DB projections.DB
	// Redis is the client of TASKQUEUE_REDIS_URL (nil without it).
	Redis *redisx.Client
	// Metrics is the Prometheus registry of GET /metrics.
	Metrics *metrics.Registry
	// Logger is its logger.
	Logger *slog.Logger
}

// NewProcessorApp opens what `taskqueue processor` needs (the event store
// with its migrations applied, Redis when configured) and starts the
// processor and, with Redis, the relay. The returned stop shuts them down
// gracefully and closes what was opened; on error everything is closed
// already. logOut receives the log (os.Stderr when nil).
func NewProcessorApp(ctx context.Context, cfg Config, logOut io.Writer) (_ *ProcessorApp, _ func(), err error) {
	var cl closers
	defer func() {
		if err != nil {
			cl.closeAll()
		}
	}()
	b, err := openBase(ctx, "build processor", cfg, logOut, Config.ValidateWithoutTokens, &cl)
	if err != nil {
		return nil, nil, err
	}
	cfg, st := b.cfg, b.st
	a := &ProcessorApp{Config: cfg, Logger: b.log, DB: st.readModels, Metrics: b.metrics, Store: b.store}
	if cfg.RedisURL != "" {
		c, err := redisx.Open(redisx.Config{URL: cfg.RedisURL, Prefix: cfg.RedisPrefix, Logger: a.Logger})
		if err != nil {
			return nil, nil, err
		}
		a.Redis = c
		cl.add(func() { _ = c.Close() })
	}
	if err := b.instrumentRedis(a.Redis); err != nil {
		return nil, nil, err
	}
	proc, relay, stop, err := startProcessor(cfg, a.Store, a.DB, st.pool, commandConfig(b.rules, st.store), nil, a.Redis, a.Metrics, a.Logger)
	if err != nil {
		return nil, nil, err
	}
	cl.add(stop)
	a.Processor = proc
	ready := append(st.ready, web.ReadinessCheck{Name: "processor", Check: proc.Runner().Ready},
		web.ReadinessCheck{Name: "processorOutage", Optional: true, Check: proc.Advancing})
	a.Metrics.SetSources(metrics.Sources{
		Projections:  proc.Runner().Status,
		ActiveQueues: metrics.ActiveQueuesIn(a.DB),
		DeadLetters:  metrics.DeadLettersIn(a.DB),
		Relay:        relayLag(relay),
		LogHorizon:   b.horizon,
	})
	a.Handler = probeHandler(ready, a.Metrics.Handler(), a.Logger)
	a.Logger.Info("processor built", "backend", st.backend, "redis", a.Redis != nil)
	return a, cl.closeAll, nil
}

// probeHandler serves /healthz (alive), /readyz (web.Readiness, as the
// API's) and /metrics, and 404 for anything else.
func probeHandler(ready []web.ReadinessCheck, metricsHandler http.Handler, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /readyz", web.Readiness(ready, log))
	mux.Handle("GET /metrics", metricsHandler)
	return mux
}

// Republish re-publishes the integration events of the domain events at
// and after position from, up to the head of the log now, where the relay
// publishes them (`taskqueue relay --from N`): the Redis streams with
// TASKQUEUE_REDIS_URL, else the PostgreSQL outbox. It returns how many
// messages it published.
func Republish(ctx context.Context, cfg Config, from eventstore.Position, logOut io.Writer) (int, error) {
	cfg.setDefaults()
	if err := cfg.ValidateWithoutTokens(); err != nil {
		return 0, err
	}
	if logOut == nil {
		logOut = os.Stderr
	}
	log := NewLogger(cfg, logOut)
	st, err := openStore(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer func() { _ = st.close() }()
	var pub message.Publisher
	wlog := watermill.NewSlogLogger(log.With("component", "relay-publisher"))
	switch {
	case cfg.RedisURL != "":
		target, err := redisx.ParseTarget(cfg.RedisURL)
		if err != nil {
			return 0, fmt.Errorf("TASKQUEUE_REDIS_URL: %w", err)
		}
		rdb := target.NewClient(redisx.Tuning{})
		defer rdb.Close()
		if err := rdb.Ping(ctx).Err(); err != nil {
			return 0, fmt.Errorf("redis at TASKQUEUE_REDIS_URL does not answer: %w", err)
		}
		if pub, err = relay.NewIntegrationPublisher(rdb, wlog); err != nil {
			return 0, err
		}
	case st.pool != nil:
		// Each page in one transaction of the outbox (relay.Config.Outbox).
	default:
		return 0, errors.New("integration events are published to Redis streams (set TASKQUEUE_REDIS_URL) or the PostgreSQL outbox (set TASKQUEUE_DATABASE_URL)")
	}
	if pub != nil {
		defer pub.Close()
	}
	rcfg := relay.Config{Store: st.store, DB: st.readModels, Publisher: pub, TopicPrefix: TopicPrefix(cfg), Logger: log}
	if pub == nil {
		rcfg.Outbox = st.pool
	}
	r, err := relay.New(rcfg)
	if err != nil {
		return 0, err
	}
	return r.Republish(ctx, relay.Before(from))
}

// sweepOutbox deletes the outbox's messages older than
// relay.OutboxRetention once an hour until ctx ends.
func sweepOutbox(ctx context.Context, pool *pgxpool.Pool, prefix string, log *slog.Logger) {
	var topics []string
	for _, typ := range relay.IntegrationTypes {
		topics = append(topics, relay.Topic(prefix, typ))
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := relay.SweepOutbox(ctx, pool, topics); err != nil && ctx.Err() == nil {
			log.Warn("outbox sweep failed; it runs again in an hour", "err", err)
		} else if n > 0 {
			log.Info("outbox swept", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// processorHere starts the processor in serve's process when cfg says so,
// appending through store (the command side's local appends), and gives
// the admin API its dead letters; it returns the processor (nil when it
// runs elsewhere), the relay's lag for the metrics and the readiness checks
// it adds. When the processor runs elsewhere (`taskqueue processor`),
// admins still list its dead letters here, and with Redis a retry goes to
// the command streams the processors consume (without Redis it answers
// 503: nothing here could handle it).
func processorHere(b *base, rr *redisRoles, store eventstore.Store, queues *command.Queues, admin *web.Admin, cl *closers) (
	*processor.Processor, func(context.Context) (eventstore.Position, time.Duration, error), []web.ReadinessCheck, error,
) {
	cfg, st := b.cfg, b.st
	if !cfg.ProcessorOn() {
		b.log.Info("the processor does not run in this process (TASKQUEUE_PROCESSOR=false)")
		dl, err := remoteDeadLetters(st.readModels, rr.client, cl)
		if err != nil {
			return nil, nil, nil, err
		}
		admin.DeadLetters = deadLetters{dl}
		return nil, nil, nil, nil
	}
	proc, relay, stop, err := startProcessor(cfg, store, st.readModels, st.pool, commandConfig(b.rules, st.store), queues, rr.client, b.metrics, b.log)
	if err != nil {
		return nil, nil, nil, err
	}
	cl.add(stop)
	admin.DeadLetters = deadLetters{proc.DeadLetters()}
	return proc, relayLag(relay), []web.ReadinessCheck{
		{Name: "processor", Check: proc.Runner().Ready},
		{Name: "processorOutage", Optional: true, Check: proc.Advancing},
	}, nil
}

package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/query"
	"github.com/taskqueue/taskqueue/queuecache"
	"github.com/taskqueue/taskqueue/realtime"
	"github.com/taskqueue/taskqueue/tracing"
	"github.com/taskqueue/taskqueue/web"
)

// retentionInterval is how often the history's retention sweep runs.
const retentionInterval = time.Hour

// readSide is the read side running inside the app: the projections
// runner, the history retention, and the query handlers over them.
type readSide struct {
	runner    *projections.Runner
	queue     *query.QueueViewHandler
	history   *query.HistoryHandler
	progress  *query.PlayerProgressHandler
	analytics *query.AnalyticsHandler
	stop      func()
}

// startReadSide starts the projections runner and the retention sweep on
// db (the read-model database) following store. stop ends both and waits.
// obs is told of the projections' outages (the metrics registry). With
// replicas (hot standbys of db), the queries read from them first
// (query.Replicas), and replicaRead is told each outcome.
func startReadSide(store eventstore.Store, db projections.DB, replicas []projections.DB, cfg Config, log *slog.Logger, obs faults.Observer, replicaRead func(string)) (*readSide, error) {
	runner, err := projections.NewRunner(projections.Config{
		Store: store,
		DB:    db,
		Projections: []projections.Projection{
			tracing.Projection(projections.Queues{}),
			tracing.Projection(projections.PlayerProgress{}),
			tracing.Projection(projections.Analytics{}),
		},
		Logger:   log,
		Observer: obs,
	})
	if err != nil {
		return nil, fmt.Errorf("start the read side: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		_ = runner.Run(ctx)
	}()
	retention := projections.Retention{DB: db, Days: cfg.HistoryRetentionDays}
	go func() {
		defer func() { done <- struct{}{} }()
		retention.Run(ctx, retentionInterval, func(err error) {
			log.Warn("history retention sweep failed", "err", err)
		})
	}()
	var rm query.ReadModels = projections.NewReadModels(db)
	queue := query.NewQueueViewHandler(rm, runner, cfg.QueueLimit)
	if len(replicas) > 0 {
		rs := &query.Replicas{Primary: rm, Observe: replicaRead}
		for _, r := range replicas {
			rs.Replicas = append(rs.Replicas, projections.NewReadModels(r))
		}
		queue, rm = rs.QueueViews(queue), rs
	}
	return &readSide{
		runner:    runner,
		queue:     queue,
		history:   query.NewHistoryHandler(rm).WithCutoff(retention.Cutoff),
		progress:  query.NewPlayerProgressHandler(rm),
		analytics: query.NewAnalyticsHandler(rm, nil),
		stop: func() {
			cancel()
			<-done
			<-done
		},
	}, nil
}

// projectionAdmin routes the admin API's projection requests (status,
// rebuild, skip, retry) to the runners of this process: the read side's
// and, when the processor runs here, its schedule's (processor_schedule).
// When the processor runs in another process (TASKQUEUE_PROCESSOR=false),
// processor_schedule is not listed here: its state is on that process's
// /readyz and /metrics (taskqueue_projection_state), and it is managed
// there (a restart retries it).
func projectionAdmin(admin *web.Admin, runners ...*projections.Runner) {
	pa := projections.NewAdmin(runners...)
	admin.Projections = query.NewProjectionStatusHandler(pa)
	admin.Rebuild = query.NewRebuildProjectionHandler(pa)
	admin.Skip = query.NewSkipEventHandler(pa)
	admin.Retry = query.NewRetryProjectionHandler(pa)
}

// projectionsCheck is ready when no projection has failed or is degraded.
func projectionsCheck(r *projections.Runner) web.ReadinessCheck {
	return web.ReadinessCheck{Name: "projections", Check: r.Ready}
}

// queueWatermark tells the realtime hub when the queue read model has
// applied a position, so that a REST read after a message is never older.
func queueWatermark(r *projections.Runner) realtime.Watermark {
	return realtime.PollingWatermark(func(ctx context.Context) (eventstore.Position, error) {
		st, err := r.StatusOf(ctx, projections.QueuesName)
		return st.Position, err
	}, r.Committed, 0)
}

// startRealtime starts the WebSocket hub following store, with the
// sessions, queue cache, progress and (on Redis) presence and wake-ups of
// rr.
func startRealtime(ctx context.Context, store eventstore.Store, rules domain.Rules, tokens realtime.TokenVerifier,
	watermark realtime.Watermark, rr *redisRoles, cfg Config, obs faults.Observer, log *slog.Logger) (*realtime.Hub, error) {
	hubCfg := realtime.Config{
		Store:          tracing.Subscriber(store, "fanout"),
		Tokens:         tokens,
		Rules:          rules,
		Watermark:      watermark,
		OriginPatterns: cfg.CORSOrigins,
		OfflineGrace:   cfg.PresenceGrace,
		ReadTimeout:    cfg.RequestTimeout,
		Logger:         log,
		Sessions:       rr.sessions,
		Changes:        queuecache.Changes{Cache: rr.cache, Progress: rr.progress},
		Observer:       obs,
	}
	if rr.presence != nil {
		hubCfg.Presence = rr.presence
	}
	if rr.wakeups != nil {
		hubCfg.Waker = rr.wakeups
	}
	hub, err := realtime.NewHub(hubCfg)
	if err != nil {
		return nil, fmt.Errorf("start realtime: %w", err)
	}
	if err := hub.Start(ctx); err != nil {
		return nil, err
	}
	return hub, nil
}

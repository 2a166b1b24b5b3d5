package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
	"github.com/taskqueue/taskqueue/metrics"
	"github.com/taskqueue/taskqueue/redisx"
	"github.com/taskqueue/taskqueue/tracing"
)

// base is what every command's components stand on: the configuration with
// its defaults, the logger, the game rules, the event store with its
// migrations applied (and the SQL database beside it), and the metrics
// registry. serve (New), `taskqueue processor` (NewProcessorApp) and the
// operator commands (NewOperatorApp) each open it, then build only the
// components they need on it.
type base struct {
	cfg     Config
	log     *slog.Logger
	catalog *domain.Catalog
	rules   domain.Rules
	st      openedStore
	// store is st.store counted (metrics) and traced.
	store   eventstore.Store
	metrics *metrics.Registry
	// horizon reports the log's reading horizon (metrics.Sources).
	horizon func() (time.Duration, int64)
}

// openBase sets cfg's defaults and checks it with validate (an error is
// reported as what's: "build app: ..."), then opens the logger (writing to
// logOut, os.Stderr when nil), the catalog, the data directory and the
// event store; cl gets what must be closed.
func openBase(ctx context.Context, what string, cfg Config, logOut io.Writer, validate func(Config) error, cl *closers) (*base, error) {
	if logOut == nil {
		logOut = os.Stderr
	}
	cfg.setDefaults()
	if err := validate(cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	b := &base{cfg: cfg, log: NewLogger(cfg, logOut), metrics: metrics.New()}
	var err error
	if b.catalog, err = LoadCatalog(cfg); err != nil {
		return nil, err
	}
	b.rules = domain.Rules{Catalog: b.catalog, QueueLimit: cfg.QueueLimit}
	if cfg.usesDataDir() {
		if err := sqlite.PrepareDir(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("TASKQUEUE_DATA_DIR: %w", err)
		}
	}
	if b.st, err = openStore(ctx, cfg); err != nil {
		return nil, err
	}
	cl.add(func() {
		if err := b.st.close(); err != nil {
			b.log.Error("close event store", "err", err)
		}
	})
	b.horizon = b.st.watchHorizon(b.log, cl)
	b.store = tracing.Store(b.metrics.Store(b.st.store))
	return b, nil
}

// instrumentRedis counts c's errors (taskqueue_redis_errors_total) and,
// with tracing on, traces its commands. A nil c is no Redis.
func (b *base) instrumentRedis(c *redisx.Client) error {
	if c == nil {
		return nil
	}
	c.Redis().AddHook(b.metrics.RedisHook())
	if err := tracing.Redis(c.Redis()); err != nil {
		return fmt.Errorf("trace redis: %w", err)
	}
	return nil
}

package app

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib" // also registers the "pgx" database/sql driver

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/postgres"
	"github.com/taskqueue/taskqueue/migrations"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/tracing"
	"github.com/taskqueue/taskqueue/web"
)

// openPostgres connects a pool of cfg.DatabaseMaxConns to cfg.DatabaseURL,
// applies every PostgreSQL migration, creates or updates the analyst role
// when cfg.AnalystPassword is set (migrations.EnsureAnalystRole), and opens the event
// store on it.
func openPostgres(ctx context.Context, cfg Config) (openedStore, error) {
	pool, db, err := connectPostgres(ctx, cfg)
	if err != nil {
		return openedStore{}, err
	}
	s, err := postgres.New(ctx, pool)
	if err != nil {
		db.Close()
		pool.Close()
		return openedStore{}, err
	}
	st := onPostgres(s, "postgres", pool, db)
	st.pg = s
	return st, nil
}

// onPostgres is store s of backend with its read models in the PostgreSQL
// of pool (db is its database/sql view); closing it closes s, db and pool.
func onPostgres(s eventstore.Store, backend string, pool *pgxpool.Pool, db *sql.DB) openedStore {
	return openedStore{
		store:      s,
		backend:    backend,
		readModels: projections.NewPostgresDB(pool),
		pool:       pool,
		ready:      []web.ReadinessCheck{storeCheck(s), readModelsCheck(db, migrations.Postgres)},
		close: func() error {
			err := s.Close()
			db.Close()
			pool.Close()
			return err
		},
	}
}

// IdleInTransactionTimeout is the idle_in_transaction_session_timeout of
// the service's PostgreSQL sessions unless TASKQUEUE_DATABASE_URL sets one
// (e.g. "?idle_in_transaction_session_timeout=60s"). No transaction of the
// service waits for anything but the database between its statements, so
// a session idle that long in a transaction is one cut off from us.
const IdleInTransactionTimeout = "30s"

const idleInTransactionParam = "idle_in_transaction_session_timeout"

// connectPostgres connects a pool of cfg.DatabaseMaxConns to
// cfg.DatabaseURL, applies every PostgreSQL migration and creates or
// updates the analyst role (migrations.EnsureAnalystRole). db is a database/sql view
// of the pool; close db, then the pool.
//
// A new connection gives up after cfg.RequestTimeout unless the URL sets
// connect_timeout. pgxpool finishes a connection in the background after
// the request that wanted it gave up, and without a timeout of its own
// (pgxpool's is 2 minutes) connections begun while the network was
// partitioned would hold the pool's slots that long after it healed.
//
// Every session sets idle_in_transaction_session_timeout (default
// IdleInTransactionTimeout, or the URL's): when this process is cut off
// from the server in the middle of a transaction (a partition, a frozen
// VM), the server ends the transaction after that long instead of keeping
// it open until TCP gives up, minutes later. An open write transaction
// holds back the horizon below which every reader of the log reads (see
// eventstore/postgres), so it would stall every projection, processor and
// WebSocket hub of the deployment, and hold its row locks, for as long.
func connectPostgres(ctx context.Context, cfg Config) (*pgxpool.Pool, *sql.DB, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("TASKQUEUE_DATABASE_URL: %w", err)
	}
	pcfg.MaxConns = int32(cfg.DatabaseMaxConns)
	if pcfg.ConnConfig.ConnectTimeout <= 0 {
		pcfg.ConnConfig.ConnectTimeout = cfg.RequestTimeout
	}
	if _, set := pcfg.ConnConfig.RuntimeParams[idleInTransactionParam]; !set {
		pcfg.ConnConfig.RuntimeParams[idleInTransactionParam] = IdleInTransactionTimeout
	}
	pcfg.ConnConfig.Tracer = tracing.PostgresTracer()
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if err := postgres.Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, nil, err
	}
	db := stdlib.OpenDBFromPool(pool)
	if err := migrations.EnsureAnalystRole(ctx, db, cfg.AnalystPassword); err != nil {
		db.Close()
		pool.Close()
		return nil, nil, err
	}
	return pool, db, nil
}

// openPostgresSQL opens cfg.DatabaseURL as a database/sql pool.
func openPostgresSQL(ctx context.Context, cfg Config) (*sql.DB, migrations.Dialect, func(), error) {
	db, err := sql.Open("pgx", cfg.DatabaseURL)
	if err != nil {
		return nil, migrations.Dialect{}, nil, fmt.Errorf("open PostgreSQL: %w", err)
	}
	db.SetMaxOpenConns(2)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, migrations.Dialect{}, nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return db, migrations.Postgres, func() { db.Close() }, nil
}

// openReplicas opens a pool on each of cfg.DatabaseReplicaURLs (hot
// standbys: no migrations, nothing written). A standby that does not
// answer yet is no error: its queries fall back to the primary until it
// does (logged once here).
func openReplicas(ctx context.Context, cfg Config, log *slog.Logger, cl *closers) ([]projections.DB, error) {
	var dbs []projections.DB
	for i, u := range cfg.DatabaseReplicaURLs {
		pcfg, err := pgxpool.ParseConfig(u)
		if err != nil {
			return nil, fmt.Errorf("TASKQUEUE_DATABASE_REPLICA_URLS (number %d): %w", i+1, err)
		}
		pcfg.MaxConns = int32(cfg.DatabaseMaxConns)
		if pcfg.ConnConfig.ConnectTimeout <= 0 {
			pcfg.ConnConfig.ConnectTimeout = cfg.RequestTimeout
		}
		pcfg.ConnConfig.Tracer = tracing.PostgresTracer()
		pool, err := pgxpool.NewWithConfig(ctx, pcfg)
		if err != nil {
			return nil, fmt.Errorf("TASKQUEUE_DATABASE_REPLICA_URLS (number %d): %w", i+1, err)
		}
		cl.add(pool.Close)
		if err := pool.Ping(ctx); err != nil {
			log.Warn("a read replica does not answer; its queries go to the primary until it does",
				"replica", i+1, "host", pcfg.ConnConfig.Host, "err", err)
		}
		dbs = append(dbs, projections.NewPostgresDB(pool))
	}
	return dbs, nil
}

package app

import (
	"context"
	"path/filepath"

	"github.com/taskqueue/taskqueue/eventstore/kurrentdb"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
	"github.com/taskqueue/taskqueue/migrations"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/web"
)

// openKurrentDB opens the event store on cfg.KurrentDBURL, and the SQL
// database of the read models, the processor's schedule and claims, and
// the relay's checkpoint: PostgreSQL with cfg.DatabaseURL (migrated, the
// analyst role ensured, as in openPostgres), else the SQLite file in the
// data directory (its event tables stay empty). The read side and the
// processor run on it exactly as on the SQL backends: they only follow the
// log through the eventstore.Store port, and keep their checkpoints (the
// log's positions) in that database.
func openKurrentDB(ctx context.Context, cfg Config) (openedStore, error) {
	s, err := kurrentdb.Open(ctx, kurrentdb.Config{URL: cfg.KurrentDBURL, Namespace: cfg.KurrentDBNamespace})
	if err != nil {
		return openedStore{}, err
	}
	if cfg.DatabaseURL != "" {
		pool, db, err := connectPostgres(ctx, cfg)
		if err != nil {
			s.Close()
			return openedStore{}, err
		}
		return onPostgres(s, "kurrentdb", pool, db), nil
	}
	rm, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, SQLiteFileName))
	if err != nil {
		s.Close()
		return openedStore{}, err
	}
	return openedStore{
		store:      s,
		backend:    "kurrentdb",
		readModels: projections.NewSQLiteStoreDB(rm),
		ready:      []web.ReadinessCheck{storeCheck(s), readModelsCheck(rm.ReadDB(), migrations.SQLite)},
		close: func() error {
			err := s.Close()
			if cerr := rm.Close(); err == nil {
				err = cerr
			}
			return err
		},
	}, nil
}

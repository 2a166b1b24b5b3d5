package app

import (
	"context"
	"fmt"

	"github.com/taskqueue/taskqueue/eventstore/kurrentdb"
	"github.com/taskqueue/taskqueue/migrations"
	"github.com/taskqueue/taskqueue/web"
)

// openKurrentDB opens the event store on cfg.KurrentDBURL. The SQL database
// of the read models (PostgreSQL with cfg.DatabaseURL, else the SQLite file
// in the data directory) is migrated too, so that every schema is in place
// before serving, and on PostgreSQL the analyst role is ensured as in
// openPostgres.
func openKurrentDB(ctx context.Context, cfg Config) (openedStore, error) {
	s, err := kurrentdb.Open(ctx, kurrentdb.Config{URL: cfg.KurrentDBURL, Namespace: cfg.KurrentDBNamespace})
	if err != nil {
		return openedStore{}, err
	}
	db, dialect, closeDB, err := OpenSQL(ctx, cfg)
	if err != nil {
		s.Close()
		return openedStore{}, err
	}
	if _, err := migrations.Up(ctx, db, dialect); err != nil {
		closeDB()
		s.Close()
		return openedStore{}, fmt.Errorf("migrate the read-model database: %w", err)
	}
	if dialect == migrations.Postgres {
		if err := EnsureAnalystRole(ctx, db, cfg.AnalystPassword); err != nil {
			closeDB()
			s.Close()
			return openedStore{}, err
		}
	}
	return openedStore{
		store:   s,
		backend: "kurrentdb",
		ready:   []web.ReadinessCheck{storeCheck(s), migrationsCheck(db, dialect)},
		close: func() error {
			err := s.Close()
			closeDB()
			return err
		},
	}, nil
}

package app

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/taskqueue/taskqueue/projections"
)

// logOf names the event log cfg follows. On SQLite and PostgreSQL the
// events live in the same database as the read models, so the backend
// names it; a KurrentDB log is its server (without credentials) and
// namespace.
func logOf(cfg Config) string {
	switch {
	case cfg.KurrentDBURL != "":
		server := cfg.KurrentDBURL
		if u, err := url.Parse(cfg.KurrentDBURL); err == nil && u.Host != "" {
			server = u.Host
		}
		return "kurrentdb:" + server + "/" + cfg.KurrentDBNamespace
	case cfg.DatabaseURL != "":
		return "postgres"
	default:
		return "sqlite"
	}
}

// bindLog records, at the first start on db, which event log its read
// models, processor schedule and claims, and relay checkpoint follow, and
// on every later start checks that it is the same one. Their checkpoints
// are positions in one log: a deployment following another log (say
// KurrentDB, pointed at the PostgreSQL database of a PostgreSQL
// deployment) would otherwise apply its events on top of the other log's
// and report nothing.
func bindLog(ctx context.Context, db projections.DB, log string, now time.Time) error {
	if db == nil {
		return nil
	}
	var bound string
	err := db.InTx(ctx, func(tx projections.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO log_binding (id, log, bound_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING`, log, now); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT log FROM log_binding WHERE id = 1`).Scan(&bound)
	})
	if err != nil {
		return fmt.Errorf("check which event log the read models follow: %w", err)
	}
	if bound != log {
		return fmt.Errorf("%w: its read models follow the event log %q, and this deployment's is %q; give each event log "+
			"a database of its own (TASKQUEUE_DATABASE_URL, or TASKQUEUE_DATA_DIR for the SQLite file)", ErrOtherLog, bound, log)
	}
	return nil
}

// ErrOtherLog is returned when the read-model database follows another
// event log than the one configured.
var ErrOtherLog = errors.New("the read-model database belongs to another event log")

package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Horizon tells what holds the log's readers back (see "Reading the
// global log" in the package doc): the oldest transaction of the cluster
// that has written something, in any database, and the events committed
// after it began, which no reader sees until it ends.
type Horizon struct {
	// Age is how long the oldest writing transaction has been open; zero
	// when none is open.
	Age time.Duration
	// PID, Database, User, Application and State describe it, as
	// pg_stat_activity shows them to this connection's role (a role
	// without pg_read_all_stats sees other roles' sessions only partly).
	PID         int32
	Database    string
	User        string
	Application string
	State       string
	// Unreadable counts the events committed at or above the horizon: in
	// the log, not yet readable by ReadAll, Head or a subscription.
	Unreadable int64
}

// String names the transaction for a log line or /readyz.
func (h Horizon) String() string {
	return fmt.Sprintf("transaction of pid %d (database %q, user %q, application %q, %s) open for %s; %d committed events wait behind it",
		h.PID, h.Database, h.User, h.Application, h.State, h.Age.Round(time.Second), h.Unreadable)
}

// Horizon reports the oldest writing transaction of the cluster and how
// many events wait behind it. Two light queries; safe to call every few
// seconds.
func (s *Store) Horizon(ctx context.Context) (Horizon, error) {
	var h Horizon
	var age *time.Duration
	err := s.pool.QueryRow(ctx, `SELECT pid, coalesce(datname, ''), coalesce(usename, ''),
			coalesce(application_name, ''), coalesce(state, ''), clock_timestamp() - xact_start
		FROM pg_stat_activity
		WHERE backend_xid IS NOT NULL
		ORDER BY age(backend_xid) DESC
		LIMIT 1`).Scan(&h.PID, &h.Database, &h.User, &h.Application, &h.State, &age)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Horizon{}, nil
	case err != nil:
		return Horizon{}, fmt.Errorf("read the log's horizon: %w", err)
	}
	if age != nil {
		h.Age = max(*age, 0)
	}
	err = s.pool.QueryRow(ctx, `SELECT count(*) FROM event_log
		WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())`).Scan(&h.Unreadable)
	if err != nil {
		return Horizon{}, fmt.Errorf("count the events behind the log's horizon: %w", err)
	}
	return h, nil
}

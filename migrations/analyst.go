package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// AnalystRole is the read-only PostgreSQL login role for analysts
// (migration 0014_analyst_role, docs/READ_MODELS.md), which the server
// creates or updates at every start (EnsureAnalystRole).
const AnalystRole = "taskqueue_analyst"

// analystMigrations are the versions of the migrations that create the
// role and set its limits, run again in this order at every start.
var analystMigrations = []int{14, 72}

// EnsureAnalystRole creates the role AnalystRole with password, or sets
// its password when it exists, and grants it SELECT on the tables and
// views of db's current schema (also on those created later), read-only
// sessions, and the role's limits (migration 0072: connections, statement
// and idle-in-transaction timeouts). It runs the statements of migrations
// 0014 and 0072 again with the setting taskqueue.analyst_password set for
// its transaction only, so the migrations and this step cannot drift apart. It is idempotent: the server
// runs it at every start after the migrations, so a changed password takes
// effect on the next start. An empty password does nothing (an existing
// role is left as it is). The password never appears in an error.
func EnsureAnalystRole(ctx context.Context, db *sql.DB, password string) error {
	if password == "" {
		return nil
	}
	all, err := List(Postgres)
	if err != nil {
		return fmt.Errorf("ensure analyst role: %w", err)
	}
	var stmts []string
	for _, v := range analystMigrations {
		for _, m := range all {
			if m.Version == v {
				stmts = append(stmts, m.SQL)
			}
		}
	}
	if len(stmts) != len(analystMigrations) {
		return fmt.Errorf("ensure analyst role: a migration of %v is missing", analystMigrations)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ensure analyst role: %w", sanitizePG(err))
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	// Instances starting together take turns (two concurrent ALTER ROLE of
	// one role fail with "tuple concurrently updated") on the lock of the
	// migrations, a table lock the analyst cannot take (an advisory lock
	// it could hold, and hang every start).
	if _, err := tx.ExecContext(ctx, `LOCK TABLE schema_migrations IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return fmt.Errorf("ensure analyst role: %w", sanitizePG(err))
	}
	if _, err := tx.ExecContext(ctx, `SELECT set_config('taskqueue.analyst_password', $1, true)`, password); err != nil {
		return fmt.Errorf("ensure analyst role: %w", sanitizePG(err))
	}
	for _, stmt := range stmts {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("ensure analyst role %s: %w", AnalystRole, sanitizePG(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ensure analyst role: %w", sanitizePG(err))
	}
	return nil
}

// sanitizePG keeps only the message and code of a PostgreSQL error: its
// other fields (the PL/pgSQL context) may quote the statement that ran,
// password included.
func sanitizePG(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	return err
}

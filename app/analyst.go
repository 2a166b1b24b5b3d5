package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/taskqueue/taskqueue/migrations"
)

// AnalystRole is the read-only PostgreSQL login role for analysts
// (migration 0014_analyst_role, docs/READ_MODELS.md).
const AnalystRole = "taskqueue_analyst"

// analystMigration is the version of the migration that creates the role.
const analystMigration = 14

// analystLock is the advisory lock key that serializes EnsureAnalystRole
// across instances starting together (roles are cluster-wide: two
// concurrent ALTER ROLE of one role fail with "tuple concurrently updated").
const analystLock = 0x74715f616e616c // "tq_anal"

// EnsureAnalystRole creates the role AnalystRole with password, or sets
// its password when it exists, and grants it SELECT on the tables and
// views of db's current schema (also on those created later), read-only
// sessions. It runs the statements of migration 0014 again with the
// setting taskqueue.analyst_password set for its transaction only, so the
// migration and this step cannot drift apart. It is idempotent: the server
// runs it at every start after the migrations, so a changed password takes
// effect on the next start. An empty password does nothing (an existing
// role is left as it is). The password never appears in an error.
func EnsureAnalystRole(ctx context.Context, db *sql.DB, password string) error {
	if password == "" {
		return nil
	}
	all, err := migrations.List(migrations.Postgres)
	if err != nil {
		return fmt.Errorf("ensure analyst role: %w", err)
	}
	var stmt string
	for _, m := range all {
		if m.Version == analystMigration {
			stmt = m.SQL
		}
	}
	if stmt == "" {
		return fmt.Errorf("ensure analyst role: migration %04d is missing", analystMigration)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ensure analyst role: %w", sanitizePG(err))
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(analystLock)); err != nil {
		return fmt.Errorf("ensure analyst role: %w", sanitizePG(err))
	}
	if _, err := tx.ExecContext(ctx, `SELECT set_config('taskqueue.analyst_password', $1, true)`, password); err != nil {
		return fmt.Errorf("ensure analyst role: %w", sanitizePG(err))
	}
	if _, err := tx.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("ensure analyst role %s: %w", AnalystRole, sanitizePG(err))
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

// Package migrations owns the SQL schema of both SQL backends (the event log,
// the read models, the processor's schedule) and applies it.
//
// The files live in postgres/ and sqlite/ beside this file, are embedded in
// the binary, and are named NNNN_name.sql. Up applies the pending ones in
// order, each in its own transaction together with its row in
// schema_migrations, so a crash leaves every migration either applied or not.
// A migration that was applied and whose file changed since is reported as an
// error: migrations that landed are never edited, a new one is added.
//
// On PostgreSQL, each migration's transaction first locks schema_migrations
// (SHARE ROW EXCLUSIVE, which only a role that may write the table can
// take) and checks again that the migration is still pending, so several
// instances starting at once apply each migration exactly once. It is a
// table lock, not an advisory lock, because any role of the database (the
// read-only analyst) may hold any advisory lock, and one held on the
// migration lock's key hung every start; the analyst's SELECT takes only
// ACCESS SHARE, which this lock does not wait for. Statements
// never name a schema: the connection's search_path decides where tables go,
// which is how tests give every package a schema of its own.
package migrations

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed postgres sqlite
var files embed.FS

// Dialect names a SQL backend. The set is closed: Postgres and SQLite.
type Dialect struct{ name string }

var (
	Postgres = Dialect{"postgres"}
	SQLite   = Dialect{"sqlite"}
)

func (d Dialect) String() string { return d.name }

// Valid reports whether d is one of the known dialects.
func (d Dialect) Valid() bool { return d == Postgres || d == SQLite }

// Migration is one SQL file.
type Migration struct {
	Version  int
	Name     string // the file name without "NNNN_" and ".sql"
	SQL      string
	Checksum string // hex SHA-256 of SQL
}

// State is a migration and whether it was applied.
type State struct {
	Migration
	Applied   bool
	AppliedAt time.Time
	// Modified is true when the migration was applied from a file that has
	// changed since.
	Modified bool
}

// ErrModified is wrapped by Up's error when an applied migration's file
// changed.
var ErrModified = errors.New("applied migration was modified")

// List returns the dialect's migrations in order.
func List(d Dialect) ([]Migration, error) { return list(files, d) }

func list(fsys fs.FS, d Dialect) ([]Migration, error) {
	if !d.Valid() {
		return nil, fmt.Errorf("list migrations: unknown dialect %q", d.name)
	}
	entries, err := fs.ReadDir(fsys, d.name)
	if err != nil {
		return nil, fmt.Errorf("list %s migrations: %w", d, err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, rest, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("list %s migrations: %s is not named NNNN_name.sql", d, name)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("list %s migrations: %s and %s share version %d", d, other, name, v)
		}
		seen[v] = name
		b, err := fs.ReadFile(fsys, path.Join(d.name, name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		sum := sha256.Sum256(b)
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(rest, ".sql"), SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

const createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	checksum   TEXT NOT NULL,
	applied_at TEXT NOT NULL
)`

// Up applies every pending migration of d to db and returns the ones it
// applied. It is safe to call from several processes at once.
func Up(ctx context.Context, db *sql.DB, d Dialect) ([]Migration, error) {
	return up(ctx, db, d, files)
}

func up(ctx context.Context, db *sql.DB, d Dialect, fsys fs.FS) ([]Migration, error) {
	all, err := list(fsys, d)
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: connect: %w", d, err)
	}
	defer conn.Close()
	if err := createMigrationsTable(ctx, conn); err != nil {
		return nil, fmt.Errorf("migrate %s: create schema_migrations: %w", d, err)
	}
	applied, err := readApplied(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", d, err)
	}
	var done []Migration
	for _, m := range all {
		if a, ok := applied[m.Version]; ok {
			if a.checksum != m.Checksum {
				return done, fmt.Errorf("migrate %s: %w: %04d_%s", d, ErrModified, m.Version, m.Name)
			}
			continue
		}
		ran, err := apply(ctx, conn, d, m)
		if err != nil {
			return done, err
		}
		if ran {
			done = append(done, m)
		}
	}
	return done, nil
}

// createMigrationsTable creates schema_migrations if it is missing. Two
// sessions creating it at once on PostgreSQL may see one of them fail on
// the catalog's unique index (or find the table there after all): it is
// then there, and the statement is tried again.
func createMigrationsTable(ctx context.Context, conn *sql.Conn) error {
	var err error
	for range 3 {
		if _, err = conn.ExecContext(ctx, createTable); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
	}
	return err
}

// apply applies m in a transaction of its own, unless it was applied
// meanwhile (by another instance): ran says whether it did.
func apply(ctx context.Context, conn *sql.Conn, d Dialect, m Migration) (ran bool, _ error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate %s: begin %04d_%s: %w", d, m.Version, m.Name, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if d == Postgres {
		if _, err := tx.ExecContext(ctx, `LOCK TABLE schema_migrations IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return false, fmt.Errorf("migrate %s: lock schema_migrations: %w", d, err)
		}
		var sum string
		err := tx.QueryRowContext(ctx, `SELECT checksum FROM schema_migrations WHERE version = $1`, m.Version).Scan(&sum)
		switch {
		case err == nil && sum != m.Checksum:
			return false, fmt.Errorf("migrate %s: %w: %04d_%s", d, ErrModified, m.Version, m.Name)
		case err == nil:
			return false, nil // another instance applied it while this one waited
		case !errors.Is(err, sql.ErrNoRows):
			return false, fmt.Errorf("migrate %s: read schema_migrations: %w", d, err)
		}
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("migrate %s: apply %04d_%s: %w", d, m.Version, m.Name, err)
	}
	if step := steps[d][m.Version]; step != nil {
		if err := step(ctx, tx); err != nil {
			return false, fmt.Errorf("migrate %s: apply %04d_%s: %w", d, m.Version, m.Name, err)
		}
	}
	insert := `INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)`
	if d == SQLite {
		insert = `INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)`
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if _, err := tx.ExecContext(ctx, insert, m.Version, m.Name, m.Checksum, now); err != nil {
		return false, fmt.Errorf("migrate %s: record %04d_%s: %w", d, m.Version, m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate %s: commit %04d_%s: %w", d, m.Version, m.Name, err)
	}
	return true, nil
}

// steps are the parts of migrations that a dialect cannot say in SQL
// alone, run after the file's SQL in the same transaction (so a migration
// is still applied whole or not at all). The file describes its step in a
// comment; like the file, a step that landed is never changed.
var steps = map[Dialect]map[int]func(ctx context.Context, tx *sql.Tx) error{
	SQLite: {15: sqliteQueueState},
}

// sqliteQueueState is the step of sqlite/0015_queue_state.sql: the
// generated column queue_status.state on every generation of the table.
func sqliteQueueState(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_master
		WHERE type = 'table' AND name LIKE 'queue\_status\_\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return fmt.Errorf("list queue_status tables: %w", err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return fmt.Errorf("list queue_status tables: %w", err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list queue_status tables: %w", err)
	}
	for _, t := range tables {
		stmts := []string{
			`ALTER TABLE "` + t + `" ADD COLUMN state TEXT GENERATED ALWAYS AS (
	CASE WHEN NOT running THEN 'stopped' WHEN task_count = 0 THEN 'idle' ELSE 'running' END) VIRTUAL`,
			`CREATE INDEX "` + t + `_state_updated" ON "` + t + `" (state, updated_at)`,
		}
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("add state to %s: %w", t, err)
			}
		}
	}
	return nil
}

type appliedRow struct {
	checksum string
	at       time.Time
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func readApplied(ctx context.Context, q querier) (map[int]appliedRow, error) {
	rows, err := q.QueryContext(ctx, `SELECT version, checksum, applied_at FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	out := map[int]appliedRow{}
	for rows.Next() {
		var (
			v       int
			sum, at string
		)
		if err := rows.Scan(&v, &sum, &at); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		t, _ := time.Parse(time.RFC3339Nano, at)
		out[v] = appliedRow{checksum: sum, at: t}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return out, nil
}

// Status reports every migration of d and whether db has it applied.
func Status(ctx context.Context, db *sql.DB, d Dialect) ([]State, error) {
	return status(ctx, db, d, files)
}

func status(ctx context.Context, db *sql.DB, d Dialect, fsys fs.FS) ([]State, error) {
	all, err := list(fsys, d)
	if err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, createTable); err != nil {
		return nil, fmt.Errorf("migration status %s: %w", d, err)
	}
	applied, err := readApplied(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("migration status %s: %w", d, err)
	}
	out := make([]State, len(all))
	for i, m := range all {
		a, ok := applied[m.Version]
		out[i] = State{Migration: m, Applied: ok, AppliedAt: a.at, Modified: ok && a.checksum != m.Checksum}
	}
	return out, nil
}

// Pending returns the migrations of d that db lacks; an empty result means
// the schema is up to date (what /readyz checks).
func Pending(ctx context.Context, db *sql.DB, d Dialect) ([]Migration, error) {
	states, err := Status(ctx, db, d)
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, s := range states {
		if !s.Applied {
			out = append(out, s.Migration)
		}
	}
	return out, nil
}

package projections

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/migrations"
)

// checkpoint is one row of projection_checkpoints.
type checkpoint struct {
	name       string
	generation string
	version    int
	active     bool
	position   eventstore.Position
	applied    int64
}

func loadCheckpoints(ctx context.Context, q Querier, name string) ([]checkpoint, error) {
	rows, err := q.Query(ctx, `SELECT generation, version, active, commit_position, seq_position, events_applied
		FROM projection_checkpoints WHERE name = $1 ORDER BY created_at, generation`, name)
	if err != nil {
		return nil, fmt.Errorf("load checkpoints of %s: %w", name, err)
	}
	defer rows.Close()
	var out []checkpoint
	for rows.Next() {
		c := checkpoint{name: name}
		var commit, seq int64
		if err := rows.Scan(&c.generation, &c.version, &c.active, &commit, &seq, &c.applied); err != nil {
			return nil, fmt.Errorf("load checkpoints of %s: %w", name, err)
		}
		c.position = eventstore.Position{Commit: uint64(commit), Seq: uint64(seq)}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load checkpoints of %s: %w", name, err)
	}
	return out, nil
}

func insertCheckpoint(ctx context.Context, tx Tx, c checkpoint, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints
		(name, generation, version, active, commit_position, seq_position, events_applied, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)`,
		c.name, c.generation, c.version, c.active, int64(c.position.Commit), int64(c.position.Seq), now)
	if err != nil {
		return fmt.Errorf("insert checkpoint %s/%s: %w", c.name, c.generation, err)
	}
	return nil
}

// errSuperseded means the generation's checkpoint row moved under the
// worker (another runner applied the batch first) or vanished (a rebuild
// switched generations): the worker reloads and starts over.
var errSuperseded = fmt.Errorf("checkpoint moved or generation retired by another runner")

// advanceCheckpoint moves the checkpoint from `from` to `to` inside tx, or
// returns errSuperseded when the row is not at `from` any more. The
// compare-and-set makes two runners of the same projection safe: one of them
// commits each batch, the other rolls back.
func advanceCheckpoint(ctx context.Context, tx Tx, name, generation string, from, to eventstore.Position, n int, now time.Time) error {
	c, err := tx.Exec(ctx, `UPDATE projection_checkpoints
		SET commit_position = $1, seq_position = $2, events_applied = events_applied + $3, updated_at = $4
		WHERE name = $5 AND generation = $6 AND commit_position = $7 AND seq_position = $8`,
		int64(to.Commit), int64(to.Seq), n, now, name, generation, int64(from.Commit), int64(from.Seq))
	if err != nil {
		return fmt.Errorf("advance checkpoint of %s/%s to %s: %w", name, generation, to, err)
	}
	if c != 1 {
		return errSuperseded
	}
	return nil
}

// tableExists reports whether the physical table exists.
func tableExists(ctx context.Context, q Querier, table string) (bool, error) {
	var n int
	var err error
	if q.Dialect() == migrations.Postgres {
		err = q.QueryRow(ctx, `SELECT count(*) FROM pg_class c WHERE c.relname = $1
			AND c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')`, table).Scan(&n)
	} else {
		err = q.QueryRow(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1`, table).Scan(&n)
	}
	if err != nil {
		return false, fmt.Errorf("look up table %s: %w", table, err)
	}
	return n > 0, nil
}

// cloneTable creates the empty table `to` with the shape of `from`: columns,
// defaults, constraints, indexes and (PostgreSQL) partitioning.
func cloneTable(ctx context.Context, tx Tx, from, to string) error {
	if tx.Dialect() == migrations.Postgres {
		var partKey *string
		err := tx.QueryRow(ctx, `SELECT pg_get_partkeydef(c.oid) FROM pg_class c
			WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace`, from).Scan(&partKey)
		if err != nil {
			return fmt.Errorf("clone %s to %s: read partitioning: %w", from, to, err)
		}
		stmt := "CREATE TABLE " + to + " (LIKE " + from + " INCLUDING ALL)"
		if partKey != nil && *partKey != "" {
			stmt += " PARTITION BY " + *partKey
		}
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("clone %s to %s: %w", from, to, err)
		}
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT type, sql FROM sqlite_master WHERE tbl_name = $1 AND sql IS NOT NULL
		ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END`, from)
	if err != nil {
		return fmt.Errorf("clone %s to %s: read schema: %w", from, to, err)
	}
	var stmts []string
	for rows.Next() {
		var typ, sql string
		if err := rows.Scan(&typ, &sql); err != nil {
			rows.Close()
			return fmt.Errorf("clone %s to %s: read schema: %w", from, to, err)
		}
		stmts = append(stmts, strings.ReplaceAll(sql, from, to))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("clone %s to %s: read schema: %w", from, to, err)
	}
	if len(stmts) == 0 {
		return fmt.Errorf("clone %s to %s: no such table", from, to)
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("clone %s to %s: %w", from, to, err)
		}
	}
	return nil
}

// pointView makes the view `view` select from table.
func pointView(ctx context.Context, tx Tx, view, table string) error {
	if _, err := tx.Exec(ctx, "DROP VIEW IF EXISTS "+view); err != nil {
		return fmt.Errorf("re-point view %s: drop: %w", view, err)
	}
	if _, err := tx.Exec(ctx, "CREATE VIEW "+view+" AS SELECT * FROM "+table); err != nil {
		return fmt.Errorf("re-point view %s to %s: %w", view, table, err)
	}
	return nil
}

func dropTable(ctx context.Context, tx Tx, table string) error {
	if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
		return fmt.Errorf("drop table %s: %w", table, err)
	}
	return nil
}

// newGenerationName returns the name of a rebuild's generation: "v<version>"
// for the first build of a version, "v<version>r<base36 time>" for a later
// rebuild of the same version.
func newGenerationName(version int, existing []checkpoint, now time.Time) string {
	g := "v" + strconv.Itoa(version)
	for _, c := range existing {
		if c.generation == g {
			return g + "r" + strconv.FormatInt(now.UnixMilli(), 36)
		}
	}
	return g
}

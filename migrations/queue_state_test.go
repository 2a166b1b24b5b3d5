package migrations

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/query"
)

// shippedBefore returns the shipped migrations of d before version v.
func shippedBefore(t *testing.T, d Dialect, v int) fstest.MapFS {
	t.Helper()
	all, err := List(d)
	if err != nil {
		t.Fatal(err)
	}
	out := fstest.MapFS{}
	for _, m := range all {
		if m.Version < v {
			out[fmt.Sprintf("%s/%04d_%s.sql", d, m.Version, m.Name)] = &fstest.MapFile{Data: []byte(m.SQL)}
		}
	}
	return out
}

// queue_status.state is the state the API shows (query.QueueStateOf) for
// every combination of running and task count, read through the view, on
// both dialects — also where a rebuild had replaced queue_status__v1 by
// another generation before the migration ran (it adds the column to the
// tables that exist, not to a name it assumes).
func TestQueueStatusState(t *testing.T) {
	for _, d := range []Dialect{SQLite, Postgres} {
		for _, rebuilt := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/rebuilt=%t", d, rebuilt), func(t *testing.T) {
				db := open(t, d)
				ctx := context.Background()
				if _, err := up(ctx, db, d, shippedBefore(t, d, 15)); err != nil {
					t.Fatal(err)
				}
				table := "queue_status__v1"
				if rebuilt {
					table = "queue_status__v1r2"
					cloneForTest(t, db, d, "queue_status__v1", table)
				}
				if _, err := Up(ctx, db, d); err != nil {
					t.Fatal(err)
				}
				insert := `INSERT INTO ` + table + ` (player_id, stream_version, running, stopped, task_count, tasks,
					created_at, updated_at, last_position) VALUES ($1, 1, $2, $3, $4, '[]', $5, $5, '1')`
				if d == SQLite {
					insert = `INSERT INTO ` + table + ` (player_id, stream_version, running, stopped, task_count, tasks,
						created_at, updated_at, last_position) VALUES (?, 1, ?, ?, ?, '[]', ?, ?, '1')`
				}
				for i, c := range []struct {
					running bool
					tasks   int
				}{{true, 0}, {true, 2}, {false, 0}, {false, 3}} {
					player := fmt.Sprintf("p%d", i)
					args := []any{player, c.running, !c.running, c.tasks, "2026-12-06T00:00:00.000000Z"}
					if d == SQLite {
						args = append(args, args[4])
					}
					if _, err := db.ExecContext(ctx, insert, args...); err != nil {
						t.Fatal(err)
					}
					var got string
					q := `SELECT state FROM queue_status WHERE player_id = $1`
					if d == SQLite {
						q = `SELECT state FROM queue_status WHERE player_id = ?`
					}
					if err := db.QueryRowContext(ctx, q, player).Scan(&got); err != nil {
						t.Fatal(err)
					}
					want := query.QueueStateOf(domain.QueueView{Running: c.running, Tasks: make([]domain.TaskView, c.tasks)})
					if got != string(want) {
						t.Errorf("running=%t tasks=%d: queue_status.state = %q, the API says %q", c.running, c.tasks, got, want)
					}
				}
			})
		}
	}
}

// cloneForTest plays a rebuild that replaced from by to: the new table,
// the view on it, the old one dropped (as projections' switch does).
func cloneForTest(t *testing.T, db *sql.DB, d Dialect, from, to string) {
	t.Helper()
	ctx := context.Background()
	var stmts []string
	if d == Postgres {
		stmts = []string{"CREATE TABLE " + to + " (LIKE " + from + " INCLUDING ALL)"}
	} else {
		var ddl string
		if err := db.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?`, from).Scan(&ddl); err != nil {
			t.Fatal(err)
		}
		stmts = []string{fmt.Sprintf("CREATE TABLE %s%s", to, ddl[len("CREATE TABLE "+from):])}
	}
	stmts = append(stmts, "DROP VIEW queue_status", "CREATE VIEW queue_status AS SELECT * FROM "+to, "DROP TABLE "+from)
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

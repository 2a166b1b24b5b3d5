package projections

import (
	"context"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/projections/projectiontest"
)

// History older than the retention is removed (PostgreSQL: its daily
// partitions dropped; SQLite: deleted in batches); newer history stays.
func TestRetentionRemovesOldHistory(t *testing.T) {
	eachDialect(t, func(t *testing.T, open func() backend) {
		ctx := context.Background()
		b := open()
		now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
		r := startRunner(t, b, Config{})
		if _, err := (projectiontest.Workload{Seed: 1, Prefix: "old", Players: 3, Commands: 400, Start: now.AddDate(0, 0, -40)}).Run(ctx, b.store); err != nil {
			t.Fatal(err)
		}
		res, err := (projectiontest.Workload{Seed: 2, Prefix: "new", Players: 3, Commands: 400, Start: now.Add(-2 * time.Hour)}).Run(ctx, b.store)
		if err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, r, res.Last)
		count := func(where string) int {
			var n int
			if err := b.db.QueryRow(ctx, "SELECT count(*) FROM task_history WHERE "+where).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		oldRows, newRows := count("player_id LIKE 'old%'"), count("player_id LIKE 'new%'")
		if oldRows == 0 || newRows == 0 {
			t.Fatalf("history: %d old rows, %d new rows", oldRows, newRows)
		}
		swept, err := Retention{DB: b.db, Days: 30, BatchSize: 7, Now: func() time.Time { return now }}.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.name == "postgres" && swept.Partitions == 0 || b.name == "sqlite" && swept.Rows != int64(oldRows) {
			t.Fatalf("sweep removed %+v, want the %d old rows", swept, oldRows)
		}
		if n := count("player_id LIKE 'old%'"); n != 0 {
			t.Fatalf("%d old rows left", n)
		}
		if n := count("player_id LIKE 'new%'"); n != newRows {
			t.Fatalf("%d new rows left, want %d", n, newRows)
		}
	})
}

package projections

import (
	"context"
	"testing"

	"github.com/taskqueue/taskqueue/projections/projectiontest"
)

// Replaying the whole log from zero into a fresh database gives read models
// identical, row by row, to the ones kept live while the workload ran.
func TestReplayIntoFreshDatabaseMatchesLive(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			open := func() backend {
				if dialect == "sqlite" {
					return openSQLite(t, "")
				}
				return openPostgres(t, "")
			}
			live := open()
			r := startRunner(t, live, Config{BatchSize: 200})
			res, err := projectiontest.Workload{Seed: 7, Players: 20, Commands: 1500}.Run(context.Background(), live.store)
			if err != nil {
				t.Fatal(err)
			}
			if res.Events < 800 {
				t.Fatalf("workload wrote only %d events", res.Events)
			}
			waitCaughtUp(t, r, res.Last)

			fresh := open()
			n, last := copyLog(t, live.store, fresh.store)
			if n != res.Events {
				t.Fatalf("copied %d events, the workload wrote %d", n, res.Events)
			}
			r2 := startRunner(t, fresh, Config{BatchSize: 1000})
			waitCaughtUp(t, r2, last)

			// Positions differ between two PostgreSQL logs (transaction IDs).
			skip := []string{"last_position"}
			for _, v := range allViews() {
				want := dump(t, live.db, v, skip...)
				if len(want) == 0 {
					t.Errorf("%s is empty after the workload", v)
				}
				t.Logf("%s: %d rows", v, len(want))
				sameRows(t, v, want, dump(t, fresh.db, v, skip...))
			}
		})
	}
}

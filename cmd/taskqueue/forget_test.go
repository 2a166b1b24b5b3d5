package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/ops"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/projections/projectiontest"
)

// `taskqueue forget --player ID` on SQLite and on PostgreSQL (the same log
// moved there by export and import): the player's events are gone from
// `events` and `export`, the read models hold no row of theirs while the
// other players keep theirs, the audit trail records the forget, and a bad
// or missing --player is a usage error.
func TestForgetCommand(t *testing.T) {
	srcDir := t.TempDir()
	wl := runWorkload(t, srcDir, projectiontest.Workload{Seed: 16, Players: 3, Commands: 90, Start: time.Now().UTC().Add(-time.Hour).Truncate(time.Second)})
	players := slices.Sorted(func(yield func(domain.PlayerID) bool) {
		for p := range wl.Queues {
			if !yield(p) {
				return
			}
		}
	})
	sqliteEnv := map[string]string{"TASKQUEUE_DATA_DIR": srcDir}
	file := exportTo(t, sqliteEnv, wl.Events)
	pgURL := testenv.Postgres(t)
	pgEnv := map[string]string{"TASKQUEUE_DATABASE_URL": pgURL, "TASKQUEUE_JWT_SECRET": strings.Repeat("s", 32), "TASKQUEUE_DATA_DIR": t.TempDir()}
	if code, _, stderr := runCLI(t, pgEnv, "import", file); code != 0 {
		t.Fatalf("import into PostgreSQL: exit %d, %q", code, stderr)
	}
	// The read models built first, as a running server keeps them: forget
	// waits at most 10 s for the projections to pass the deleted events, and
	// the first build on a fresh database, started by forget's own process,
	// could take longer on a busy shared server (a CI run found the other
	// players' queue_status rows missing).
	mustCLI(t, pgEnv, "serves", "replay", "--projection", "all")

	for _, side := range []struct {
		name string
		env  map[string]string
		db   func() projections.Querier
	}{
		{"sqlite", sqliteEnv, func() projections.Querier { return openSQLiteReadModels(t, filepath.Join(srcDir, app.SQLiteFileName)) }},
		{"postgres", pgEnv, func() projections.Querier { return openPostgresReadModels(t, pgURL) }},
	} {
		t.Run(side.name, func(t *testing.T) {
			for _, args := range [][]string{{"forget"}, {"forget", "--player", "a b"}} {
				if code, _, stderr := runCLI(t, side.env, args...); code != exitUsage || !strings.Contains(stderr, "player") {
					t.Fatalf("%v: exit %d, %q; want a usage error", args, code, stderr)
				}
			}
			gone := string(players[0])
			out := mustCLI(t, side.env, `"events"`, "forget", "--player", gone)
			var res ops.ForgetResult
			if err := json.Unmarshal([]byte(out), &res); err != nil || res.PlayerID != gone || res.Events == 0 {
				t.Fatalf("forget printed %q (%v); want the player's erased events", out, err)
			}
			if code, out, stderr := runCLI(t, side.env, "events", "--player", gone); code != 0 || out != "" {
				t.Fatalf("events of the forgotten player: exit %d, %q, %q; want none", code, out, stderr)
			}
			if code, out, _ := runCLI(t, side.env, "export"); code != 0 || strings.Contains(out, gone) || !strings.Contains(out, string(players[1])) {
				t.Fatalf("export after the forget: exit %d; want the others' events and none of %s", code, gone)
			}
			if code, out, _ := runCLI(t, side.env, "audit", "--action", "admin.forget"); code != 0 || !strings.Contains(out, gone) {
				t.Fatalf("audit of the forget: exit %d, %q", code, out)
			}
			db := side.db()
			for _, table := range []string{"queue_status", "task_history", "player_progress", "analytics_active_players_hourly", "analytics_queue_lengths", "processor_schedule"} {
				for _, p := range players {
					var n int
					if err := db.QueryRow(context.Background(), `SELECT count(*) FROM `+table+` WHERE player_id = $1`, string(p)).Scan(&n); err != nil {
						t.Fatal(err)
					}
					if (p == players[0]) != (n == 0) && (p == players[0] || table == "queue_status") {
						t.Errorf("%s: %d rows of %s after forgetting %s", table, n, p, gone)
					}
				}
			}
		})
	}
}

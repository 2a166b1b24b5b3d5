package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/ops/opstest"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/projections/projectiontest"
)

// TestCLIMovesTheLogBetweenSQLiteAndPostgres is issue 8's "a test drives
// the CLI through replay, time travel, export and import between SQLite and
// PostgreSQL": a workload on the SQLite store of a data directory, then
// only CLI commands — replay on SQLite, export, import into a fresh
// PostgreSQL schema (twice: the second is refused and writes nothing),
// replay there — and the read models, `events` and `queue --at` must agree
// on both; then the way back, PostgreSQL to a new SQLite file.
func TestCLIMovesTheLogBetweenSQLiteAndPostgres(t *testing.T) {
	// The workload's clock started an hour ago: its running repetitions
	// are overdue, so a command that ran the processor (replay builds the
	// whole app) would complete them and append events; each export below
	// checks that the store still holds exactly the log that was moved.
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	srcDir := t.TempDir()
	wl := runWorkload(t, srcDir, projectiontest.Workload{Seed: 88, Players: 5, Commands: 400, Start: start})
	players := slices.Sorted(func(yield func(domain.PlayerID) bool) {
		for p := range wl.Queues {
			if !yield(p) {
				return
			}
		}
	})
	sqliteEnv := map[string]string{"TASKQUEUE_DATA_DIR": srcDir}
	pgURL := testenv.Postgres(t)
	pgEnv := map[string]string{"TASKQUEUE_DATABASE_URL": pgURL, "TASKQUEUE_JWT_SECRET": strings.Repeat("s", 32), "TASKQUEUE_DATA_DIR": t.TempDir()}

	mustCLI(t, sqliteEnv, "serves", "replay", "--projection", "all")
	file := exportTo(t, sqliteEnv, wl.Events)

	// A damaged file (its last line cut short) is refused whole: the
	// PostgreSQL store stays empty.
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(t.TempDir(), "damaged.jsonl")
	if err := os.WriteFile(damaged, good[:len(good)-20], 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, pgEnv, "import", damaged)
	if code != exitFail || !strings.Contains(stderr, fmt.Sprintf("line %d", wl.Events)) {
		t.Fatalf("import of a damaged file: exit %d, %q; want 1 naming line %d", code, stderr, wl.Events)
	}
	exportTo(t, pgEnv, 0)

	// Into the empty PostgreSQL store.
	code, _, stderr = runCLI(t, pgEnv, "import", file)
	if want := fmt.Sprintf("imported %d events of %d streams", wl.Events, len(wl.Queues)); code != 0 || !strings.Contains(stderr, want) {
		t.Fatalf("import into PostgreSQL: exit %d, %q; want 0 and %q", code, stderr, want)
	}
	// Into a store that is no longer empty: refused, nothing written, even
	// for streams it does not hold.
	otherDir := t.TempDir()
	other := runWorkload(t, otherDir, projectiontest.Workload{Seed: 9, Players: 2, Prefix: "other-", Commands: 30, Start: start})
	otherFile := exportTo(t, map[string]string{"TASKQUEUE_DATA_DIR": otherDir}, other.Events)
	for _, f := range []string{file, otherFile} {
		code, out, stderr := runCLI(t, pgEnv, "import", f)
		if code != exitFail || !strings.Contains(stderr, "import only into a new, empty store") || out != "" {
			t.Fatalf("import into a non-empty PostgreSQL store: exit %d, stdout %q, stderr %q; want 1 and a clear refusal", code, out, stderr)
		}
	}
	exportTo(t, pgEnv, wl.Events) // still exactly the first import's events

	mustCLI(t, pgEnv, "serves", "replay", "--projection", "all")
	exportTo(t, pgEnv, wl.Events) // replay appended nothing

	sqliteDB := openSQLiteReadModels(t, filepath.Join(srcDir, app.SQLiteFileName))
	pgDB := openPostgresReadModels(t, pgURL)
	from, to := start.Add(-24*time.Hour), wl.End.Add(48*time.Hour)
	got := opstest.SameReadModels(t, opstest.Side{Name: "sqlite", DB: sqliteDB}, opstest.Side{Name: "postgres", DB: pgDB}, players, from, to)
	if got.HistoryEntries == 0 || got.Tasks == 0 || got.ProgressSkills == 0 || got.Rows["analytics_task_daily"] == 0 {
		t.Fatalf("the workload left too little to compare: %+v", got)
	}
	t.Logf("compared %+v", got)
	sameCLIAnswers(t, sqliteEnv, pgEnv, players, start, wl.End)

	// The way back: PostgreSQL → a new SQLite data directory.
	backFile := exportTo(t, pgEnv, wl.Events)
	backDir := t.TempDir()
	backEnv := map[string]string{"TASKQUEUE_DATA_DIR": backDir}
	if code, _, stderr := runCLI(t, backEnv, "import", backFile); code != 0 {
		t.Fatalf("import into SQLite: exit %d, %s", code, stderr)
	}
	mustCLI(t, backEnv, "serves", "replay", "--projection", "all")
	backDB := openSQLiteReadModels(t, filepath.Join(backDir, app.SQLiteFileName))
	opstest.SameReadModels(t, opstest.Side{Name: "sqlite", DB: sqliteDB}, opstest.Side{Name: "back", DB: backDB}, players, from, to)
	sameCLIAnswers(t, sqliteEnv, backEnv, players, start, wl.End)
}

// runWorkload appends a workload to the SQLite store of dataDir, as serve
// would keep it, and closes the store.
func runWorkload(t *testing.T, dataDir string, w projectiontest.Workload) projectiontest.Result {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(dataDir, app.SQLiteFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := w.Run(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// mustCLI runs a command that must succeed and print want on stdout.
func mustCLI(t *testing.T, env map[string]string, want string, args ...string) string {
	t.Helper()
	code, out, stderr := runCLI(t, env, args...)
	if code != 0 || !strings.Contains(out, want) {
		t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, code, out, stderr)
	}
	return out
}

// exportTo runs `taskqueue export`, checks it holds events lines, and
// returns the file it was saved to.
func exportTo(t *testing.T, env map[string]string, events int) string {
	t.Helper()
	code, out, stderr := runCLI(t, env, "export")
	if code != 0 || strings.Count(out, "\n") != events || !strings.Contains(stderr, fmt.Sprintf("exported %d events", events)) {
		t.Fatalf("export: exit %d, %d lines, stderr %q; want %d events", code, strings.Count(out, "\n"), stderr, events)
	}
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// sameCLIAnswers checks that `events` and `queue --at` answer the same on
// both stores for every player, positions and recording times aside (the
// log's own, not the events').
func sameCLIAnswers(t *testing.T, envA, envB map[string]string, players []domain.PlayerID, start, end time.Time) {
	t.Helper()
	mid := start.Add(end.Sub(start) / 2).Format(time.RFC3339Nano)
	queries := [][]string{
		{"events"},
		{"events", "--type", "RepetitionCompleted,TaskRemoved"},
		{"events", "--from", mid},
		{"queue", "--at", start.Add(time.Minute).Format(time.RFC3339)},
		{"queue", "--at", mid},
		{"queue", "--at", end.Add(time.Hour).Format(time.RFC3339)},
	}
	nonEmpty := 0
	for _, p := range players {
		for _, q := range queries {
			args := append(slices.Clone(q), "--player", string(p))
			a, b := mustCLI(t, envA, "", args...), mustCLI(t, envB, "", args...)
			na, nb := withoutPositions(t, a), withoutPositions(t, b)
			if na != nb {
				t.Errorf("%v differs:\n a: %s\n b: %s", args, na, nb)
			}
			if strings.Contains(na, `"taskId"`) {
				nonEmpty++
			}
		}
	}
	if nonEmpty < len(players) {
		t.Fatalf("only %d of %d answers showed a task: the comparison compared little", nonEmpty, len(players)*len(queries))
	}
}

// withoutPositions re-encodes each JSON value of out without the keys
// "position" and "recordedAt", which differ between stores by design.
func withoutPositions(t *testing.T, out string) string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	var b bytes.Buffer
	for {
		var v any
		if err := dec.Decode(&v); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		drop(v)
		enc, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(enc)
		b.WriteByte('\n')
	}
	return b.String()
}

func drop(v any) {
	switch x := v.(type) {
	case map[string]any:
		delete(x, "position")
		delete(x, "recordedAt")
		for _, e := range x {
			drop(e)
		}
	case []any:
		for _, e := range x {
			drop(e)
		}
	}
}

func openSQLiteReadModels(t *testing.T, path string) projections.Querier {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return projections.NewSQLiteStoreDB(s)
}

func openPostgresReadModels(t *testing.T, url string) projections.Querier {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return projections.NewPostgresDB(pool)
}

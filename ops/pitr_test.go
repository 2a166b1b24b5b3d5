package ops

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore/postgres"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/ops/opstest"
	"github.com/taskqueue/taskqueue/projections"
)

// docs/OPERATIONS.md's PostgreSQL runbook, run: continuous archiving, a base
// backup, commands before and after a target time, a restore to that time;
// the restored database has every command acknowledged before the target
// and none after, and its read models, caught up, equal a replay of its log.
func TestPostgresPointInTimeRecovery(t *testing.T) {
	ctx := context.Background()
	archive := testenv.PostgresUserDir(t)
	settings := map[string]string{"wal_level": "replica", "archive_mode": "on",
		"archive_command": fmt.Sprintf("test ! -f %s/%%f && cp %%p %s/%%f", archive, archive)}
	srv := testenv.StartPostgresServerWith(t, testenv.PostgresOptions{Settings: settings})

	open := func(url string) (*postgres.Store, *pgxpool.Pool) {
		t.Helper()
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		if err := postgres.Migrate(ctx, pool); err != nil {
			t.Fatal(err)
		}
		s, err := postgres.New(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s, pool
	}
	store, pool := open(srv.URL())
	h, err := command.NewHandlers(store, command.Config{})
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(batch string, n int) {
		t.Helper()
		for i := range n {
			player := fmt.Sprintf("p%d", i%5)
			if _, err := h.EnqueueTask.Handle(ctx, command.EnqueueTask{Type: "chop-wood", Count: 1,
				Request: command.Request{PlayerID: player, IdempotencyKey: fmt.Sprintf("%s-%d", batch, i)}}); err != nil {
				t.Fatal(err)
			}
		}
	}

	// 2. A base backup, taken before the target time.
	base := srv.ServerDir()
	srv.Run("pg_basebackup", "-h", "127.0.0.1", "-p", fmt.Sprint(srv.Port()), "-U", "postgres",
		"-D", filepath.Join(base, "data"), "-X", "stream", "-c", "fast")
	enqueue("before", 20)
	var target time.Time
	if err := pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&target); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	enqueue("after", 20)
	var segment string
	if err := pool.QueryRow(ctx, `SELECT pg_walfile_name(pg_switch_wal())`).Scan(&segment); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var archived string
		if err := pool.QueryRow(ctx, `SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver`).Scan(&archived); err != nil {
			t.Fatal(err)
		}
		if archived >= segment {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment %s not archived within a minute (last %q)", segment, archived)
		}
		time.Sleep(50 * time.Millisecond)
	}
	srv.Stop()

	// 3. Restore the base backup to the target time.
	data := filepath.Join(base, "data")
	if err := os.WriteFile(filepath.Join(data, "recovery.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	restored := testenv.StartPostgresServerWith(t, testenv.PostgresOptions{DataDir: data, Settings: map[string]string{
		"restore_command":        fmt.Sprintf("cp %s/%%f %%p", archive),
		"recovery_target_time":   target.UTC().Format("2006-01-02 15:04:05.999999+00"),
		"recovery_target_action": "promote",
	}})
	waitPool, err := pgxpool.New(ctx, restored.URL())
	if err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(time.Minute)
	for {
		var inRecovery bool
		if err := waitPool.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery); err != nil {
			t.Fatal(err)
		}
		if !inRecovery {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restored server did not finish recovery within a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitPool.Close()
	rstore, rpool := open(restored.URL()) // read-write once promoted

	// Every command before the target is there, none after.
	var players []domain.PlayerID
	keys := map[string]bool{}
	for i := range 5 {
		p := domain.PlayerID(fmt.Sprintf("p%d", i))
		players = append(players, p)
		evs, err := rstore.ReadStream(ctx, p.Stream(), 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			keys[e.Metadata.CausationID] = true
		}
	}
	for i := range 20 {
		if !keys[fmt.Sprintf("before-%d", i)] {
			t.Errorf("command before-%d, acknowledged before the target time, is not in the restore", i)
		}
		if keys[fmt.Sprintf("after-%d", i)] {
			t.Errorf("command after-%d, made after the target time, is in the restore", i)
		}
	}

	// 4. The read models, caught up, equal a replay of the restored log.
	db := projections.NewPostgresDB(rpool)
	b := backend{Name: "restored", Store: rstore, DB: db}
	runner := startRunner(t, b)
	head, err := rstore.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, runner, head)
	into := filepath.Join(t.TempDir(), "replayed.DB")
	if _, err := ReplayTo(ctx, rstore, io.Discard, ReplayToOptions{
		ReplayOptions: ReplayOptions{Projection: AllProjections, Interval: 20 * time.Millisecond},
		To:            Moment{Position: head, HasPosition: true}, Into: into}); err != nil {
		t.Fatal(err)
	}
	replayed := openSQLiteAt(t, into)
	opstest.SameReadModels(t, opstest.Side{Name: "restored", DB: db}, opstest.Side{Name: "replayed", DB: replayed.DB},
		players, time.Now().Add(-48*time.Hour), time.Now().Add(48*time.Hour))
}

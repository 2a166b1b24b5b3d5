package projections

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/eventstore/sqlite"
	"github.com/taskqueue/taskqueue/projections/projectiontest"
)

// mountTmpfs mounts a tmpfs of size (e.g. "16m") on a new temporary
// directory and unmounts it when the test ends (after everything opened
// in it later is closed). It skips the test when the process may not
// mount (not root).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the file system is full and returns
// its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for n := len(chunk); n > 0; n /= 2 {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return path
}

// SQLite on a full disk: the projections hit SQLITE_FULL and show
// degraded with the cause, never failed; when space is freed they come
// back to live by themselves, nothing skipped, the read models equal to a
// replay from zero.
func TestSQLiteDiskFullDegradesAndHeals(t *testing.T) {
	dir := mountTmpfs(t, "16m")
	b := openSQLite(t, filepath.Join(dir, "taskqueue.db"))
	ctx := context.Background()
	first, err := (projectiontest.Workload{Seed: 21, Players: 10, Commands: 200}).Run(ctx, b.store)
	if err != nil {
		t.Fatal(err)
	}
	r1, stop := runFor(t, b, Config{Projections: allProjections()})
	waitCaughtUp(t, r1, first.Last)
	stop()
	// A backlog for the projections, written while they are stopped.
	res, err := (projectiontest.Workload{Seed: 22, Prefix: "b", Players: 10, Commands: 800}).Run(ctx, b.store)
	if err != nil {
		t.Fatal(err)
	}
	// Empty the WAL, so that the projections' writes need new space.
	if _, err := b.store.(*sqlite.Store).WriteDB().ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	filler := fillDisk(t, dir)
	obs := &outages{}
	r := startRunner(t, b, Config{BatchSize: 20, Observer: obs})
	var seen Status
	waitForRunner(t, r, "a projection degraded by the full disk", func(ctx context.Context) (bool, error) {
		st, err := r.Status(ctx)
		for _, s := range st {
			if s.State == StateFailed {
				t.Fatalf("%s failed on a full disk: %+v", s.Name, s.Failure)
			}
			if s.State == StateDegraded {
				seen = s
				return true, err
			}
		}
		return false, err
	})
	if !strings.Contains(seen.Degraded.Error, "database or disk is full") || strings.HasPrefix(seen.Degraded.Error, "start projection") {
		t.Fatalf("degraded by %q, want a batch's commit refused for the disk full", seen.Degraded.Error)
	}
	if err := r.Ready(ctx); err == nil || !strings.Contains(err.Error(), "degraded") {
		t.Fatalf("Ready on a full disk: %v", err)
	}
	// It stays degraded, never failed, while the disk is full.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if err := r.Ready(ctx); err != nil && strings.HasPrefix(err.Error(), "projections failed:") {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	t.Logf("degraded by %q; space freed", seen.Degraded.Error)
	healedLikeAReplay(t, r, b, res.Last, obs)
}

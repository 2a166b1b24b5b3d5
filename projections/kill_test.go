package projections

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/projections/projectiontest"
)

// Environment of the helper process (the TestHelperProcess pattern: the test
// binary re-executed as a child that the test can SIGKILL).
const (
	helperEnv        = "TASKQUEUE_PROJECTIONS_HELPER"
	helperDialectEnv = "TASKQUEUE_PROJECTIONS_HELPER_DIALECT"
	helperURLEnv     = "TASKQUEUE_PROJECTIONS_HELPER_URL"
)

// TestHelperProcess is not a test: it is the child process of
// TestKillMidBatch. It runs the projections over an existing log, printing
// "APPLIED <projection>" when a batch's writes and checkpoint are done but
// not yet committed, and lingering there so that the parent's SIGKILL lands
// inside the open transaction (the sleep only widens that window; no result
// depends on it).
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process of TestKillMidBatch")
	}
	var b backend
	if os.Getenv(helperDialectEnv) == "sqlite" {
		b = openSQLite(t, os.Getenv(helperURLEnv))
	} else {
		b = openPostgres(t, os.Getenv(helperURLEnv))
	}
	cfg := Config{BatchSize: 50, RetryDelay: 10 * time.Millisecond}
	cfg.beforeCommit = func(name string) {
		fmt.Println("APPLIED", name)
		time.Sleep(20 * time.Millisecond)
	}
	r := startRunner(t, b, cfg)
	waitCaughtUp(t, r)
	fmt.Println("CAUGHT-UP")
	select {} // until killed
}

// A process killed (SIGKILL) in the middle of batches, again and again,
// loses nothing and applies nothing twice: after it finally catches up, every
// read model equals a clean replay of the same log into a fresh database.
func TestKillMidBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: kills and restarts a child process")
	}
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			open := func() backend {
				if dialect == "sqlite" {
					return openSQLite(t, "")
				}
				return openPostgres(t, "")
			}
			b := open()
			res, err := projectiontest.Workload{Seed: 11, Players: 15, Commands: 1200}.Run(context.Background(), b.store)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			kills := 0
			for round := 0; round < 8; round++ {
				caughtUp := runChild(t, dialect, b.url, 1+rng.IntN(8))
				if caughtUp {
					break
				}
				kills++
			}
			if kills < 3 {
				t.Fatalf("only %d kills landed mid-batch; the test proves nothing", kills)
			}
			t.Logf("%d events, %d kills mid-batch", res.Events, kills)

			r := startRunner(t, b, Config{})
			waitCaughtUp(t, r, res.Last)
			fresh := open()
			_, last := copyLog(t, b.store, fresh.store)
			r2 := startRunner(t, fresh, Config{})
			waitCaughtUp(t, r2, last)
			for _, v := range allViews() {
				sameRows(t, v, dump(t, fresh.db, v, "last_position"), dump(t, b.db, v, "last_position"))
			}
			st, err := r.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range st {
				if s.EventsApplied != int64(res.Events) {
					t.Errorf("%s: checkpoint counts %d events applied, the log has %d", s.Name, s.EventsApplied, res.Events)
				}
			}
		})
	}
}

// runChild starts the helper process and SIGKILLs it right after its
// killAt-th "APPLIED" line (inside an open transaction). It reports whether
// the child caught up before that.
func runChild(t *testing.T, dialect, url string, killAt int) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperDialectEnv+"="+dialect, helperURLEnv+"="+url)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		seen := 0
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "APPLIED"):
				seen++
				if seen == killAt {
					_ = cmd.Process.Kill() // SIGKILL
					done <- false
					return
				}
			case line == "CAUGHT-UP":
				_ = cmd.Process.Kill()
				done <- true
				return
			}
		}
		done <- false
	}()
	var caughtUp bool
	select {
	case caughtUp = <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("helper process neither applied nor caught up in 2 minutes")
	}
	_ = cmd.Wait()
	return caughtUp
}

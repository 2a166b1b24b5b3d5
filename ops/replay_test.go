package ops

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/projections/projectiontest"
)

// A replay killed after its rebuild began leaves a generation being built;
// `taskqueue replay` run again finishes that rebuild (the new process's
// runner resumes it) instead of refusing with ErrRebuildInProgress.
func TestReplayFinishesARebuildLeftInProgress(t *testing.T) {
	ctx := context.Background()
	b := testreadside.SQLite(t)
	wl, err := (projectiontest.Workload{Seed: 5, Players: 3, Commands: 100}).Run(ctx, b.Store)
	if err != nil {
		t.Fatal(err)
	}
	r := startRunner(t, b)
	waitCaughtUp(t, r, wl.Last)
	before, err := r.StatusOf(ctx, projections.QueuesName)
	if err != nil {
		t.Fatal(err)
	}
	// The killed replay (another process): its runner created the new
	// generation, then died before building it.
	killed, err := projections.NewRunner(projections.Config{Store: b.Store, DB: b.DB, Projections: DefaultProjections(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	left, err := killed.Rebuild(ctx, projections.QueuesName)
	if err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := Replay(rctx, r, &out, ReplayOptions{Projection: AllProjections, Interval: 20 * time.Millisecond}); err != nil {
		t.Fatalf("replay after a killed one: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), projections.QueuesName+": generation "+left+" serves") {
		t.Fatalf("the replay did not finish the rebuild left in progress (%s):\n%s", left, out.String())
	}
	st, err := r.StatusOf(ctx, projections.QueuesName)
	if err != nil || st.Generation != left || st.Rebuild != nil {
		t.Fatalf("queues after the replay: %+v, %v; want generation %s (not %s) serving", st, err, left, before.Generation)
	}
	waitCaughtUp(t, r, wl.Last)
}

package projections

import (
	"context"
	"testing"

	"github.com/taskqueue/taskqueue/projections/projectiontest"
)

// A projection the runner has not started yet (no checkpoint: a process
// that has just opened its read models) has read nothing, so forgetting a
// player waits for it instead of taking it as past the deleted events; a
// process that forgot and exited at once left the other players' rows
// unbuilt.
func TestForgetWaitsForAProjectionNotStartedYet(t *testing.T) {
	ctx := context.Background()
	b := openSQLite(t, "")
	res, err := (projectiontest.Workload{Seed: 5, Players: 3, Commands: 30}).Run(ctx, b.store)
	if err != nil {
		t.Fatal(err)
	}
	head, err := b.store.Head(ctx)
	if err != nil || res.Events == 0 {
		t.Fatalf("head %v after %d events: %v", head, res.Events, err)
	}
	idle, err := NewRunner(Config{Store: b.store, DB: b.db, Projections: allProjections()})
	if err != nil {
		t.Fatal(err)
	}
	if past, err := idle.past(ctx, head); err != nil || past {
		t.Fatalf("a runner that never ran: past %v, %v; want not past", past, err)
	}
	r := startRunner(t, b, Config{})
	waitForRunner(t, r, "the projections to pass the head", func(ctx context.Context) (bool, error) { return r.past(ctx, head) })
}

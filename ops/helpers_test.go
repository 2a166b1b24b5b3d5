package ops

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/projections"
)

// backend is an event store with its read-model database.
type backend = testreadside.Backend

// startRunner runs the service's projections on b until the test ends.
func startRunner(t testing.TB, b backend) *projections.Runner {
	t.Helper()
	r, err := projections.NewRunner(projections.Config{Store: b.Store, DB: b.DB, Projections: DefaultProjections(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return r
}

// waitCaughtUp waits until every projection of r is live at or past last,
// with no rebuild running.
func waitCaughtUp(t testing.TB, r *projections.Runner, last eventstore.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for {
		ch := r.Committed()
		st, err := r.Status(ctx)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		ok := true
		for _, s := range st {
			if s.State == projections.StateFailed {
				t.Fatalf("projection %s failed: %+v", s.Name, s.Failure)
			}
			ok = ok && s.State == projections.StateLive && !s.Position.Less(last) && s.Rebuild == nil
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for the projections to reach %s: %+v", last, st)
		case <-ch:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func openSQLiteAt(t testing.TB, path string) backend {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("open sqlite store %s: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return backend{Name: "sqlite", Store: s, DB: projections.NewSQLiteStoreDB(s)}
}

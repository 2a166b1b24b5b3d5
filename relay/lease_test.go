package relay

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/projections"
)

// One holder at a time among instances asking for the same lease; a
// stopped holder hands over at once, a dead one when its lease expires.
func TestRunLeasedOneHolderAtATime(t *testing.T) {
	testreadside.Each(t, func(t *testing.T, b backend) {
		var running, most atomic.Int32
		var mu sync.Mutex
		var holders []string
		fn := func(owner string) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				n := running.Add(1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				mu.Lock()
				holders = append(holders, owner)
				mu.Unlock()
				<-ctx.Done()
				running.Add(-1)
				return nil
			}
		}
		holder := func() string {
			h, err := LeaseHolder(context.Background(), b.DB, "test", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
		cancels := map[string]context.CancelFunc{}
		var wg sync.WaitGroup
		for _, owner := range []string{"a", "b", "c"} {
			ctx, cancel := context.WithCancel(context.Background())
			cancels[owner] = cancel
			wg.Go(func() {
				cfg := LeaseConfig{DB: b.DB, Name: "test", Owner: owner, TTL: 600 * time.Millisecond, Logger: quietLogger()}
				if err := RunLeased(ctx, cfg, fn(owner)); err != nil {
					t.Errorf("RunLeased %s: %v", owner, err)
				}
			})
		}
		t.Cleanup(func() {
			for _, c := range cancels {
				c()
			}
			wg.Wait()
		})
		// Each holder in turn stops; another takes over.
		for range 2 {
			var h string
			testenv.WaitUntil(t, waitDeadline, "a holder running", func() (bool, error) {
				h = holder()
				return h != "" && running.Load() == 1, nil
			})
			cancels[h]()
			testenv.WaitUntil(t, waitDeadline, "another holder", func() (bool, error) {
				next := holder()
				return next != "" && next != h && running.Load() == 1, nil
			})
		}
		for _, c := range cancels {
			c()
		}
		wg.Wait()
		if most.Load() != 1 {
			t.Fatalf("%d holders ran at once", most.Load())
		}
		if len(holders) != 3 {
			t.Fatalf("holders in turn: %v, want 3", holders)
		}
		if h := holder(); h != "" {
			t.Fatalf("lease still held by %q after every instance stopped", h)
		}

		// A dead holder (no renewal, no release): taken once it expires.
		expires := time.Now().Add(time.Second)
		err := b.DB.InTx(context.Background(), func(tx projections.Tx) error {
			_, err := tx.Exec(context.Background(), `INSERT INTO processor_leases (name, owner, expires_at) VALUES ($1, $2, $3)`, "test", "dead", expires)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan time.Time, 1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			_ = RunLeased(ctx, LeaseConfig{DB: b.DB, Name: "test", Owner: "d", TTL: 600 * time.Millisecond, Logger: quietLogger()},
				func(ctx context.Context) error { started <- time.Now(); <-ctx.Done(); return nil })
		}()
		select {
		case at := <-started:
			if at.Before(expires) {
				t.Fatalf("took a live lease: ran at %s, the dead holder's lease expires at %s", at, expires)
			}
		case <-time.After(waitDeadline):
			t.Fatal("the dead holder's lease was never taken over")
		}
	})
}

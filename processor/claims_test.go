package processor

import (
	"context"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/internal/testreadside"
)

// The holder of a claim renews it while its repetition is in the schedule
// (a lagging schedule still shows a completed one), so another instance
// does not send its command again; but not past the hold, not once the
// repetition left the schedule, and never for another owner.
func TestRenewedClaimsHoldWhileTheScheduleLags(t *testing.T) {
	testreadside.Each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		const ttl = 5 * time.Second
		hold := claimHoldTTLs * ttl
		// The schedule as the projection writes it (generation v1 of a
		// fresh database; processor_schedule is the view over it).
		schedule := func(task string, number int) {
			t.Helper()
			if err := b.DB.InTx(ctx, func(tx projectionsTx) error {
				if _, err := tx.Exec(ctx, `DELETE FROM processor_schedule__v1 WHERE stream_id = 'queue-gus'`); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO processor_schedule__v1 (stream_id, player_id, task_id, number, due_at, started_at)
					VALUES ('queue-gus', 'gus', $1, $2, $3, $4)`, task, number, t0, t0.Add(-3*time.Second))
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		claim := func(owner string, at time.Time) int {
			t.Helper()
			got, err := claimDue(ctx, b.DB, owner, at, ttl, 10)
			if err != nil {
				t.Fatal(err)
			}
			return len(got)
		}
		renew := func(owner string, at time.Time) int64 {
			t.Helper()
			n, err := renewClaims(ctx, b.DB, owner, at, ttl, hold)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}

		schedule("t1", 1)
		if claim("a", t0) != 1 {
			t.Fatal("a did not claim the due repetition")
		}
		// a keeps renewing every 4 s; b never gets it within the hold.
		at := t0
		for at.Add(4*time.Second).Sub(t0) < hold {
			at = at.Add(4 * time.Second)
			if renew("b", at) != 0 {
				t.Fatalf("b renewed a's claim at +%s", at.Sub(t0))
			}
			if renew("a", at) != 1 {
				t.Fatalf("a's claim not renewed at +%s", at.Sub(t0))
			}
			if claim("b", at.Add(3*time.Second)) != 0 {
				t.Fatalf("b took a's renewed claim at +%s", at.Add(3*time.Second).Sub(t0))
			}
		}
		// At the hold a stops renewing (its claim, renewed at +56 s, is
		// still live at +60 s) and b takes it once it expires.
		past := t0.Add(hold)
		if !at.Add(ttl).After(past) {
			t.Fatalf("the claim must be live at the hold: renewed at +%s", at.Sub(t0))
		}
		if renew("a", past) != 0 {
			t.Fatalf("a renewed past the hold")
		}
		if claim("b", past.Add(ttl)) != 1 {
			t.Fatal("b did not take the claim a no longer renews")
		}
		// The repetition leaves the schedule (the next one is there): b's
		// claim is not renewed and a takes the next one at once.
		schedule("t1", 2)
		if renew("b", past.Add(ttl+time.Second)) != 0 {
			t.Fatal("b renewed a claim whose repetition left the schedule")
		}
		if claim("a", past.Add(ttl+time.Second)) != 1 {
			t.Fatal("a did not claim the next repetition")
		}
	})
}

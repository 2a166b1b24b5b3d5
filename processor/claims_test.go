package processor

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/projections"
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

// lossyDB loses the result of the next claim that takes something, once
// armed: the statement runs and commits on the server, and the due loop
// gets a transient error, as when the connection is cut while the claim
// runs.
type lossyDB struct {
	projections.DB
	armed atomic.Bool
	lost  atomic.Int32
}

func (db *lossyDB) Query(ctx context.Context, q string, args ...any) (projections.Rows, error) {
	rows, err := db.DB.Query(ctx, q, args...)
	if err != nil || !strings.Contains(q, "INSERT INTO processor_claims") {
		return rows, err
	}
	return &lossyRows{Rows: rows, db: db}, nil
}

type lossyRows struct {
	projections.Rows
	db *lossyDB
	n  int
}

func (r *lossyRows) Next() bool {
	if !r.Rows.Next() {
		return false
	}
	r.n++
	return true
}

func (r *lossyRows) Err() error {
	r.Rows.Close() // the statement has committed once the rows are closed
	if err := r.Rows.Err(); err != nil {
		return err
	}
	if r.n > 0 && r.db.armed.CompareAndSwap(true, false) {
		r.db.lost.Add(1)
		return fmt.Errorf("%w: the connection was cut (test)", faults.ErrUnavailable)
	}
	return nil
}

// A claim whose result was lost on PostgreSQL (the server ran it, and it
// committed by itself, while the connection was cut) holds nothing back:
// the due loop releases the claims it does not know of before it claims
// again, and sends their repetitions, instead of renewing them unsent
// until the claims' hold passed. The clock stands still here, so without
// the release the repetition would never complete.
func TestALostClaimResultHoldsNothing(t *testing.T) {
	b := testreadside.Postgres(t, "", 6)
	clock := NewManualClock(t0)
	rules := domain.Rules{}
	enqueue(t, commands(t, b, clock, rules), "alice", "chop-wood", 1)
	db := &lossyDB{DB: b.DB}
	db.armed.Store(true)
	lossy := b
	lossy.DB = db
	r := start(t, lossy, Config{Clock: clock, Commands: commandConfig(rules)})
	clock.Advance(time.Hour)
	testenv.WaitUntil(t, waitDeadline, "alice's repetition completed", func() (bool, error) {
		return upToDate(b, "alice", clock.Now()), nil
	})
	if n := db.lost.Load(); n != 1 {
		t.Fatalf("%d claim results lost, want 1: the test lost nothing", n)
	}
	_, recs := readQueue(t, b, "alice", rules)
	if n := checkCompletionsOnTime(t, "alice", recs); n != 1 {
		t.Errorf("%d repetitions completed, want 1", n)
	}
	testenv.WaitUntil(t, waitDeadline, "this processor to count the completion", func() (bool, error) {
		return r.p.Stats().Completed == 1, nil
	})
}

// The due loop releases the claims a lost attempt took, but not the claims
// of the batches in flight: by repetition, since a lost attempt may have
// taken the next repetition of a stream whose batch is in flight (the
// schedule had moved on).
func TestStrayClaimsSpareTheBatchesInFlight(t *testing.T) {
	testreadside.Each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		claim := func(stream, task string, number int, owner string, at time.Time) {
			t.Helper()
			if _, err := execAlone(ctx, b.DB, `INSERT INTO processor_claims (stream_id, task_id, number, owner, expires_at, claimed_at)
				VALUES ($1, $2, $3, $4, $5, $6)`, stream, task, number, owner, at.Add(time.Minute), at); err != nil {
				t.Fatal(err)
			}
		}
		lost := t0.Add(10 * time.Second)
		claim("queue-a", "t1", 24, "me", t0)                        // before the lost attempt: its batch landed
		claim("queue-b", "t1", 7, "me", lost)                       // in flight, claimed at that instant too
		claim("queue-c", "t1", 27, "me", lost)                      // the lost attempt's, on a stream
		claim("queue-d", "t1", 3, "someone", lost)                  // another instance's
		claim("queue-e", "t1", 5, "me", lost.Add(time.Millisecond)) // after the lost attempt
		var s strayClaims
		s.lost(lost)
		inFlight := []*sending{{batch: []due{
			{stream: "queue-b", taskID: "t1", number: 7},
			{stream: "queue-c", taskID: "t1", number: 26}, // the repetition before
		}}, {}}
		for i := range maxSpared - 2 { // as many as a release spares
			inFlight[1].batch = append(inFlight[1].batch, due{stream: fmt.Sprintf("queue-x%d", i), taskID: "t1", number: 1})
		}
		tooMany := append(inFlight, &sending{batch: []due{{stream: "queue-y", taskID: "t1", number: 1}}})
		if err := s.release(ctx, b.DB, "me", tooMany); err != nil {
			t.Fatal(err)
		}
		if !s.any() {
			t.Fatal("released with more claims in flight than a release spares")
		}
		if err := s.release(ctx, b.DB, "me", inFlight); err != nil {
			t.Fatal(err)
		}
		if s.any() {
			t.Errorf("strays left after a release: %+v", s)
		}
		rows, err := b.DB.Query(ctx, `SELECT stream_id FROM processor_claims ORDER BY stream_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var left []string
		for rows.Next() {
			var stream string
			if err := rows.Scan(&stream); err != nil {
				t.Fatal(err)
			}
			left = append(left, stream)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if want := []string{"queue-a", "queue-b", "queue-d", "queue-e"}; fmt.Sprint(left) != fmt.Sprint(want) {
			t.Errorf("claims left %v, want %v", left, want)
		}
	})
}

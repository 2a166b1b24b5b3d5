package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/migrations"
)

// nextDue answers the earliest repetition without a live claim, and finds
// it by walking the due index past the claimed ones, not by reading the
// whole schedule: the due loop asks after every commit of the schedule.
func TestNextDueReadsOnlyTheHeadOfTheSchedule(t *testing.T) {
	testreadside.Each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		if at, err := nextDue(ctx, b.DB, t0); err != nil || !at.IsZero() {
			t.Fatalf("empty schedule: nextDue = %v, %v; want the zero time", at, err)
		}
		const n = 2000
		if err := b.DB.InTx(ctx, func(tx projectionsTx) error {
			for i := range n {
				if _, err := tx.Exec(ctx, `INSERT INTO processor_schedule__v1 (stream_id, player_id, task_id, number, due_at, started_at)
					VALUES ($1, $2, 't1', 1, $3, $4)`, fmt.Sprintf("queue-p%04d", i), fmt.Sprintf("p%04d", i),
					t0.Add(time.Duration(i)*time.Millisecond), t0.Add(-time.Second)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// The first five are in flight (live claims); the sixth's claim
		// ran out, so it is the next due.
		for i := range 6 {
			expires := t0.Add(time.Minute)
			if i == 5 {
				expires = t0.Add(-time.Second)
			}
			if _, err := execAlone(ctx, b.DB, `INSERT INTO processor_claims (stream_id, task_id, number, owner, expires_at, claimed_at)
				VALUES ($1, 't1', 1, 'me', $2, $3)`, fmt.Sprintf("queue-p%04d", i), expires, t0.Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		at, err := nextDue(ctx, b.DB, t0)
		if err != nil {
			t.Fatal(err)
		}
		if want := t0.Add(5 * time.Millisecond); !at.Equal(want) {
			t.Fatalf("nextDue = %v, want %v (the first repetition without a live claim)", at, want)
		}

		if b.DB.Dialect() == migrations.Postgres {
			if err := b.DB.InTx(ctx, func(tx projectionsTx) error {
				_, err := tx.Exec(ctx, `ANALYZE processor_schedule__v1`)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			var plan string
			if err := b.DB.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) `+nextDueQuery, t0).Scan(&plan); err != nil {
				t.Fatal(err)
			}
			if read := rowsRead(t, plan, "processor_schedule__v1"); read > 20 {
				t.Errorf("nextDue read %d rows of the %d-row schedule, want the head only; plan: %s", read, n, plan)
			}
			return
		}
		// SQLite reports no row counts: that the plan walks the due index.
		rows, err := b.DB.Query(ctx, `EXPLAIN QUERY PLAN `+nextDueQuery, t0)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(plan, "\n"), "INDEX processor_schedule__v1_due") {
			t.Errorf("nextDue does not walk the due index on SQLite; plan:\n%s", strings.Join(plan, "\n"))
		}
	})
}

// rowsRead sums the rows that the nodes of a PostgreSQL JSON plan scanning
// table returned, over all their loops.
func rowsRead(t *testing.T, plan, table string) int {
	t.Helper()
	var doc []struct{ Plan planNode }
	if err := json.Unmarshal([]byte(plan), &doc); err != nil || len(doc) != 1 {
		t.Fatalf("read the plan: %v: %s", err, plan)
	}
	var sum func(n planNode) int
	sum = func(n planNode) int {
		total := 0
		if n.Relation == table {
			total += int(n.Rows * n.Loops)
		}
		for _, c := range n.Plans {
			total += sum(c)
		}
		return total
	}
	return sum(doc[0].Plan)
}

type planNode struct {
	Relation string     `json:"Relation Name"`
	Rows     float64    `json:"Actual Rows"`
	Loops    float64    `json:"Actual Loops"`
	Plans    []planNode `json:"Plans"`
}

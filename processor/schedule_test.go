package processor

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/projections"
)

// One batch of the schedule that empties many queues deletes exactly their
// rows: a repetition started and completed in the batch takes its stream's
// row with it, a completion of the repetition a row holds deletes it, a
// completion of another one leaves the row alone.
func TestScheduleBatchDeletesEndedRows(t *testing.T) {
	testreadside.Each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		started := func(stream, task string, number int) eventstore.EventData {
			due := t0.Add(time.Duration(number) * time.Second)
			return eventstore.EventData{ID: uuid.New(), Type: "RepetitionStarted", SchemaVersion: 1,
				Data: fmt.Appendf(nil, `{"taskId":%q,"number":%d,"startedAt":%q,"dueAt":%q}`, task, number,
					due.Add(-time.Second).Format(time.RFC3339Nano), due.Format(time.RFC3339Nano)),
				Metadata: eventstore.Metadata{OccurredAt: t0}}
		}
		completed := func(stream, task string, number int) eventstore.EventData {
			return eventstore.EventData{ID: uuid.New(), Type: "RepetitionCompleted", SchemaVersion: 1,
				Data:     fmt.Appendf(nil, `{"taskId":%q,"number":%d}`, task, number),
				Metadata: eventstore.Metadata{OccurredAt: t0}}
		}
		appendTo := func(stream string, evs ...eventstore.EventData) {
			t.Helper()
			if _, err := b.Store.Append(ctx, stream, eventstore.Any, evs...); err != nil {
				t.Fatal(err)
			}
		}
		// catchUp runs the schedule until it holds the rows of want
		// (streams, sorted): what was appended since the last call is read
		// in one page.
		catchUp := func(want ...string) {
			t.Helper()
			r, err := projections.NewRunner(projections.Config{Store: b.Store, DB: b.DB,
				Projections: []projections.Projection{Schedule{}}, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); _ = r.Run(rctx) }()
			defer func() { cancel(); <-done }()
			var got []string
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				got = nil
				rows, err := b.DB.Query(ctx, `SELECT stream_id FROM processor_schedule ORDER BY stream_id`)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var s string
					if err := rows.Scan(&s); err != nil {
						t.Fatal(err)
					}
					got = append(got, s)
				}
				rows.Close()
				if slices.Equal(got, want) {
					return
				}
			}
			t.Fatalf("schedule rows %v, want %v", got, want)
		}
		const n = 5
		var all []string
		for i := range n {
			for _, p := range []string{"a", "b", "c"} {
				s := fmt.Sprintf("queue-%s%d", p, i)
				appendTo(s, started(s, "t", 1))
				all = append(all, s)
			}
		}
		slices.Sort(all)
		catchUp(all...)
		var want []string
		for i := range n {
			a, bb, c, d := fmt.Sprintf("queue-a%d", i), fmt.Sprintf("queue-b%d", i), fmt.Sprintf("queue-c%d", i), fmt.Sprintf("queue-d%d", i)
			appendTo(a, completed(a, "t", 1))                     // the held repetition ends
			appendTo(bb, completed(bb, "t", 2))                   // another one: the row stays
			appendTo(c, completed(c, "t", 1), started(c, "t", 2)) // started and completed in the batch
			appendTo(c, completed(c, "t", 2))
			appendTo(d, started(d, "u", 1)) // a new row
			want = append(want, bb, d)
		}
		slices.Sort(want)
		catchUp(want...)
	})
}

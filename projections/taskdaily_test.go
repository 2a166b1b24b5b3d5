package projections

import (
	"context"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/migrations"
)

// The average efficiency of a day does not depend on how its float sum was
// batched: the same efficiencies summed live (batch by batch) and in a
// replay (in one batch) differ in their last bits, and the fault suite's
// comparison with a replay saw 1.0077061855670064 against ...078. Rows with
// such sums answer the same average.
func TestTaskDailyAverageIgnoresTheSumsLastBits(t *testing.T) {
	eachDialect(t, func(t *testing.T, open func() backend) {
		ctx := context.Background()
		b := open()
		startRunner(t, b, Config{}) // creates the tables
		rm := NewReadModels(b.db)
		day := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
		var dayArg any = day
		if b.db.Dialect() == migrations.SQLite {
			dayArg = day.Format(time.DateOnly)
		}
		var avgs []float64
		tenth := 0.1                                      // a variable: a constant 0.1 + 0.2 is exactly 0.3
		for i, sum := range []float64{tenth + 0.2, 0.3} { // 0.30000000000000004 and 0.3
			typ := []string{"a", "b"}[i]
			err := b.db.InTx(ctx, func(tx Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO analytics_task_daily__v1 (day, task_type, completions, failures, cancellations, repetitions, efficiency_sum, efficiency_count)
					VALUES ($1, $2, 1, 0, 0, 1, $3, 1)`, dayArg, typ, sum)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		days, err := rm.TaskDaily(ctx, day, day, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range days {
			avgs = append(avgs, *d.AverageEfficiency)
		}
		if len(avgs) != 2 || avgs[0] != avgs[1] {
			t.Fatalf("averages %v of sums 0.1+0.2 and 0.3: want two equal ones", avgs)
		}
	})
}

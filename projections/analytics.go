package projections

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/migrations"
)

// Analytics is the "analytics" projection: aggregates for analysts, kept by
// adding each batch's counts to the stored ones (ON CONFLICT DO UPDATE SET
// n = n + excluded.n), so a batch costs one statement per table.
type Analytics struct{}

// AnalyticsName is the name of the Analytics projection; it keys its
// checkpoint.
const AnalyticsName = "analytics"

func (Analytics) Name() string { return AnalyticsName }
func (Analytics) Version() int { return 1 }
func (Analytics) Tables() []string {
	return []string{"analytics_task_daily", "analytics_grants_daily", "analytics_active_players_hourly", "analytics_queue_lengths"}
}

// Filter reads the whole log: a stream-prefix filter makes the PostgreSQL
// store's page query much slower than reading everything, and Apply skips
// events of other streams itself.
func (Analytics) Filter() eventstore.Filter { return eventstore.Filter{} }

type taskDayKey struct{ day, typ string }
type taskDay struct {
	completions, failures, cancellations, repetitions int64
	effSum                                            float64
	effCount                                          int64
}
type grantKey struct{ day, kind, name string }
type hourKey struct {
	hour   time.Time
	player string
}

// Apply implements Projection.
func (Analytics) Apply(ctx context.Context, tx Tx, t Tables, events []eventstore.RecordedEvent) error {
	tasks := map[taskDayKey]*taskDay{}
	grants := map[grantKey]int64{}
	hours := map[hourKey]int64{}
	lengths := map[string]int64{} // change of queue length per player
	for _, re := range events {
		player, e, ok, err := decode(re)
		if err != nil {
			return err
		}
		if !ok {
			continue // not a queue stream
		}
		at := e.OccurredAt().UTC()
		day := at.Format(time.DateOnly)
		hours[hourKey{at.Truncate(time.Hour), player}]++
		td := func(typ domain.TaskTypeID) *taskDay {
			k := taskDayKey{day, string(typ)}
			if tasks[k] == nil {
				tasks[k] = &taskDay{}
			}
			return tasks[k]
		}
		switch e := e.(type) {
		case domain.TaskEnqueued:
			lengths[player]++
		case domain.TaskCompleted:
			td(e.Type).completions++
			lengths[player]--
		case domain.TaskFailed:
			td(e.Type).failures++
			lengths[player]--
		case domain.TaskRemoved:
			td(e.Type).cancellations++
			lengths[player]--
		case domain.RepetitionStarted:
			d := td(e.Type)
			d.effSum += e.Efficiency
			d.effCount++
		case domain.RepetitionCompleted:
			td(e.Type).repetitions++
			if e.XP != 0 {
				grants[grantKey{day, "xp", string(e.Skill)}] += e.XP
			}
			for item, n := range e.Granted {
				grants[grantKey{day, "item", string(item)}] += n
			}
		}
	}
	pg := tx.Dialect() == migrations.Postgres
	dayArg := func(d string) any {
		if pg {
			v, _ := time.Parse(time.DateOnly, d) // formatted above
			return v
		}
		return d
	}
	var rows [][]any
	for _, k := range slices.SortedFunc(maps.Keys(tasks), func(a, b taskDayKey) int {
		return cmp.Or(cmp.Compare(a.day, b.day), cmp.Compare(a.typ, b.typ))
	}) {
		d := tasks[k]
		rows = append(rows, []any{dayArg(k.day), k.typ, d.completions, d.failures, d.cancellations, d.repetitions, d.effSum, d.effCount})
	}
	tbl := t.Name("analytics_task_daily")
	if err := upsert(ctx, tx, tbl,
		[]string{"day", "task_type", "completions", "failures", "cancellations", "repetitions", "efficiency_sum", "efficiency_count"},
		[]string{"day", "task_type"}, addAll(tbl, "completions", "failures", "cancellations", "repetitions", "efficiency_sum", "efficiency_count"), rows); err != nil {
		return err
	}
	rows = rows[:0]
	for _, k := range slices.SortedFunc(maps.Keys(grants), func(a, b grantKey) int {
		return cmp.Or(cmp.Compare(a.day, b.day), cmp.Compare(a.kind, b.kind), cmp.Compare(a.name, b.name))
	}) {
		rows = append(rows, []any{dayArg(k.day), k.kind, k.name, grants[k]})
	}
	tbl = t.Name("analytics_grants_daily")
	if err := upsert(ctx, tx, tbl, []string{"day", "kind", "name", "amount"}, []string{"day", "kind", "name"}, addAll(tbl, "amount"), rows); err != nil {
		return err
	}
	rows = rows[:0]
	for _, k := range slices.SortedFunc(maps.Keys(hours), func(a, b hourKey) int {
		return cmp.Or(a.hour.Compare(b.hour), cmp.Compare(a.player, b.player))
	}) {
		rows = append(rows, []any{k.hour, k.player, hours[k]})
	}
	tbl = t.Name("analytics_active_players_hourly")
	if err := upsert(ctx, tx, tbl, []string{"hour", "player_id", "events"}, []string{"hour", "player_id"}, addAll(tbl, "events"), rows); err != nil {
		return err
	}
	rows = rows[:0]
	for _, p := range slices.Sorted(maps.Keys(lengths)) {
		rows = append(rows, []any{p, lengths[p]})
	}
	tbl = t.Name("analytics_queue_lengths")
	if err := upsert(ctx, tx, tbl, []string{"player_id", "task_count"}, []string{"player_id"}, addAll(tbl, "task_count"), rows); err != nil {
		return fmt.Errorf("analytics: %w", err)
	}
	return nil
}

// addAll returns "c = table.c + excluded.c" for each column.
func addAll(table string, cols ...string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c + " = " + table + "." + c + " + excluded." + c
	}
	return out
}

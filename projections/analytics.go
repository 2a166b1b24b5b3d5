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
	hour   int64 // Unix seconds of the hour's start
	player string
}

// analyticsBatch is the counts of a run of events, keyed like the rows
// they add to. Apply and the bulk build (bulk.go) both count through it.
type analyticsBatch struct {
	tasks   map[taskDayKey]*taskDay
	grants  map[grantKey]int64
	hours   map[hourKey]int64
	lengths map[string]int64 // change of queue length per player
	// dayNum and day are the last event's day, as days since the Unix
	// epoch and as the key's string: a batch's events come a few days
	// at most, and formatting every event's day was 40 % of counting it.
	dayNum int64
	day    string
}

func newAnalyticsBatch() *analyticsBatch {
	return &analyticsBatch{tasks: map[taskDayKey]*taskDay{}, grants: map[grantKey]int64{}, hours: map[hourKey]int64{}, lengths: map[string]int64{}}
}

// add counts the event e of player's queue stream.
func (a *analyticsBatch) add(player string, e domain.Event) {
	at := e.OccurredAt().Unix()
	if n := floorDiv(at, 24*3600); n != a.dayNum || a.day == "" {
		a.dayNum, a.day = n, time.Unix(n*24*3600, 0).UTC().Format(time.DateOnly)
	}
	day := a.day
	a.hours[hourKey{floorDiv(at, 3600) * 3600, player}]++
	td := func(typ domain.TaskTypeID) *taskDay {
		k := taskDayKey{day, string(typ)}
		if a.tasks[k] == nil {
			a.tasks[k] = &taskDay{}
		}
		return a.tasks[k]
	}
	switch e := e.(type) {
	case domain.TaskEnqueued:
		a.lengths[player]++
	case domain.TaskCompleted:
		td(e.Type).completions++
		a.lengths[player]--
	case domain.TaskFailed:
		td(e.Type).failures++
		a.lengths[player]--
	case domain.TaskRemoved:
		td(e.Type).cancellations++
		a.lengths[player]--
	case domain.RepetitionStarted:
		d := td(e.Type)
		d.effSum += e.Efficiency
		d.effCount++
	case domain.RepetitionCompleted:
		td(e.Type).repetitions++
		if e.XP != 0 {
			a.grants[grantKey{day, "xp", string(e.Skill)}] += e.XP
		}
		for item, n := range e.Granted {
			a.grants[grantKey{day, "item", string(item)}] += n
		}
	}
}

var (
	taskDailyCols    = []string{"day", "task_type", "completions", "failures", "cancellations", "repetitions", "efficiency_sum", "efficiency_count"}
	grantsDailyCols  = []string{"day", "kind", "name", "amount"}
	activeHourlyCols = []string{"hour", "player_id", "events"}
	queueLengthCols  = []string{"player_id", "task_count"}
)

// dayArg is a day as the dialect stores it.
func dayArg(pg bool, d string) any {
	if pg {
		v, _ := time.Parse(time.DateOnly, d) // formatted by add
		return v
	}
	return d
}

func (a *analyticsBatch) taskRows(pg bool) [][]any {
	var rows [][]any
	for _, k := range slices.SortedFunc(maps.Keys(a.tasks), func(a, b taskDayKey) int {
		return cmp.Or(cmp.Compare(a.day, b.day), cmp.Compare(a.typ, b.typ))
	}) {
		d := a.tasks[k]
		rows = append(rows, []any{dayArg(pg, k.day), k.typ, d.completions, d.failures, d.cancellations, d.repetitions, d.effSum, d.effCount})
	}
	return rows
}

func (a *analyticsBatch) grantRows(pg bool) [][]any {
	var rows [][]any
	for _, k := range slices.SortedFunc(maps.Keys(a.grants), func(a, b grantKey) int {
		return cmp.Or(cmp.Compare(a.day, b.day), cmp.Compare(a.kind, b.kind), cmp.Compare(a.name, b.name))
	}) {
		rows = append(rows, []any{dayArg(pg, k.day), k.kind, k.name, a.grants[k]})
	}
	return rows
}

func (a *analyticsBatch) hourRows() [][]any {
	var rows [][]any
	for _, k := range slices.SortedFunc(maps.Keys(a.hours), func(a, b hourKey) int {
		return cmp.Or(cmp.Compare(a.hour, b.hour), cmp.Compare(a.player, b.player))
	}) {
		rows = append(rows, []any{time.Unix(k.hour, 0).UTC(), k.player, a.hours[k]})
	}
	return rows
}

// floorDiv is a ÷ b rounded down (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

func (a *analyticsBatch) lengthRows() [][]any {
	var rows [][]any
	for _, p := range slices.Sorted(maps.Keys(a.lengths)) {
		rows = append(rows, []any{p, a.lengths[p]})
	}
	return rows
}

// Apply implements Projection.
func (Analytics) Apply(ctx context.Context, tx Tx, t Tables, events []eventstore.RecordedEvent) error {
	a := newAnalyticsBatch()
	for _, d := range decodeEvents(ctx, events) {
		player, e := d.player, d.e
		if d.err != nil {
			return d.err
		}
		if !d.ok {
			continue // not a queue stream
		}
		a.add(player, e)
	}
	pg := tx.Dialect() == migrations.Postgres
	tbl := t.Name("analytics_task_daily")
	if err := upsert(ctx, tx, tbl, taskDailyCols, taskDailyCols[:2], addAll(tbl, taskDailyCols[2:]...), a.taskRows(pg)); err != nil {
		return err
	}
	tbl = t.Name("analytics_grants_daily")
	if err := upsert(ctx, tx, tbl, grantsDailyCols, grantsDailyCols[:3], addAll(tbl, "amount"), a.grantRows(pg)); err != nil {
		return err
	}
	tbl = t.Name("analytics_active_players_hourly")
	if err := upsert(ctx, tx, tbl, activeHourlyCols, activeHourlyCols[:2], addAll(tbl, "events"), a.hourRows()); err != nil {
		return err
	}
	tbl = t.Name("analytics_queue_lengths")
	if err := upsert(ctx, tx, tbl, queueLengthCols, queueLengthCols[:1], addAll(tbl, "task_count"), a.lengthRows()); err != nil {
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

package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/migrations"
	"github.com/taskqueue/taskqueue/query"
)

// Queues is the "queues" projection: queue_status (one row per player) and
// task_history (one row per finished task). History rows need what the
// task's repetitions did (start, XP, items, efficiency), which the queue row
// accumulates in its tasks column until the task finishes, so the two
// tables are one projection.
type Queues struct{}

// QueuesName is the name of the Queues projection; it keys its checkpoint.
const QueuesName = "queues"

func (Queues) Name() string     { return QueuesName }
func (Queues) Version() int     { return 1 }
func (Queues) Tables() []string { return []string{"queue_status", "task_history"} }

// Filter reads the whole log: a stream-prefix filter makes the PostgreSQL
// store's page query much slower than reading everything, and Apply skips
// events of other streams itself.
func (Queues) Filter() eventstore.Filter { return eventstore.Filter{} }

// queueTask is one element of queue_status.tasks: the task as the queue
// view shows it, plus what its repetitions did so far (for task_history).
type queueTask struct {
	TaskID     string           `json:"taskId"`
	Type       string           `json:"type"`
	Count      int              `json:"count"`
	Done       int              `json:"done"`
	EnqueuedAt time.Time        `json:"enqueuedAt"`
	StartedAt  *time.Time       `json:"startedAt,omitempty"`
	XP         int64            `json:"xp"`
	Granted    map[string]int64 `json:"granted,omitempty"`
	Consumed   map[string]int64 `json:"consumed,omitempty"`
	EffSum     float64          `json:"efficiencySum"`
	EffCount   int              `json:"efficiencyCount"`
}

type queueRow struct {
	player        string
	version       int64
	stopped       bool
	stoppedReason string
	rep           *domain.RepetitionStarted
	tasks         []queueTask
	stats         [6]int64 // enqueued, completed, failed, cancelled, repetitions, xp
	createdAt     time.Time
	updatedAt     time.Time
	lastPosition  string              // as loaded, until an event is applied
	lastPos       eventstore.Position // of the last event applied, if any (formatted by values)
}

var queueCols = []string{
	"player_id", "stream_version", "running", "stopped", "stopped_reason",
	"head_task_id", "head_task_type", "repetition_number", "repetition_started_at", "repetition_due_at",
	"repetition_duration_ms", "repetition_efficiency", "task_count", "tasks",
	"tasks_enqueued", "tasks_completed", "tasks_failed", "tasks_cancelled", "repetitions_completed", "xp_gained",
	"created_at", "updated_at", "last_position",
}

var historyCols = []string{
	"player_id", "task_id", "task_type", "outcome", "reason", "count", "repetitions_done",
	"enqueued_at", "started_at", "finished_at", "duration_ms", "xp", "items_granted", "items_consumed",
	"efficiency", "stream_version",
}

// Apply implements Projection.
func (q Queues) Apply(ctx context.Context, tx Tx, t Tables, events []eventstore.RecordedEvent) error {
	players := playersOf(events)
	rows, err := q.load(ctx, tx, t.Name("queue_status"), players)
	if err != nil {
		return err
	}
	var history [][]any
	changed := map[string]bool{}
	for i, d := range decodeEvents(ctx, events) {
		re, player, e := &events[i], d.player, d.e
		if d.err != nil {
			return d.err
		}
		if !d.ok {
			continue // not a queue stream
		}
		row := rows[player]
		if row == nil {
			row = newQueueRow(player, e)
			rows[player] = row
		}
		h, applied, err := row.applyRecorded(re, e)
		if err != nil {
			return err
		}
		if h != nil {
			history = append(history, h)
		}
		if applied {
			changed[player] = true
		}
	}
	out := make([][]any, 0, len(changed))
	for _, p := range slices.Sorted(maps.Keys(changed)) {
		out = append(out, rows[p].values())
	}
	if err := upsert(ctx, tx, t.Name("queue_status"), queueCols, queueCols[:1], excludedAll(queueCols, queueCols[:1]), out); err != nil {
		return err
	}
	if tx.Dialect() == migrations.Postgres {
		if err := ensureDayPartitions(ctx, tx, t.Name("task_history"), history, 9); err != nil {
			return err
		}
	}
	return upsert(ctx, tx, t.Name("task_history"), historyCols, []string{"player_id", "finished_at", "task_id"}, nil, history)
}

func (Queues) load(ctx context.Context, tx Tx, table string, players []string) (map[string]*queueRow, error) {
	out := make(map[string]*queueRow, len(players))
	for start := 0; start < len(players); start += 1000 {
		chunk := players[start:min(start+1000, len(players))]
		args := make([]any, len(chunk))
		for i, p := range chunk {
			args[i] = p
		}
		rows, err := tx.Query(ctx, Unprepared(`SELECT player_id, stream_version, stopped, stopped_reason,
			repetition_number, repetition_started_at, repetition_due_at, repetition_duration_ms, repetition_efficiency,
			tasks, tasks_enqueued, tasks_completed, tasks_failed, tasks_cancelled, repetitions_completed, xp_gained,
			created_at, updated_at, last_position
			FROM `+table+` WHERE player_id IN (`+placeholders(1, len(chunk))+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("load %d queues from %s: %w", len(chunk), table, err)
		}
		for rows.Next() {
			r := &queueRow{}
			var (
				num              *int64
				started, due     Time
				durMs            *int64
				eff              *float64
				tasks            string
				created, updated Time
			)
			if err := rows.Scan(&r.player, &r.version, &r.stopped, &r.stoppedReason, &num, &started, &due, &durMs, &eff,
				&tasks, &r.stats[0], &r.stats[1], &r.stats[2], &r.stats[3], &r.stats[4], &r.stats[5],
				&created, &updated, &r.lastPosition); err != nil {
				rows.Close()
				return nil, fmt.Errorf("load queues from %s: %w", table, err)
			}
			if err := json.Unmarshal([]byte(tasks), &r.tasks); err != nil {
				rows.Close()
				return nil, fmt.Errorf("load queue %s: tasks: %w", r.player, err)
			}
			if num != nil && len(r.tasks) > 0 {
				r.rep = &domain.RepetitionStarted{
					TaskID: domain.TaskID(r.tasks[0].TaskID), Type: domain.TaskTypeID(r.tasks[0].Type), Number: int(*num),
					StartedAt: started.Time, DueAt: due.Time, DurationMs: deref(durMs), Efficiency: deref(eff),
				}
			}
			r.createdAt, r.updatedAt = created.Time, updated.Time
			out[r.player] = r
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("load queues from %s: %w", table, err)
		}
	}
	return out, nil
}

// newQueueRow returns the row of a queue whose first event is e.
func newQueueRow(player string, e domain.Event) *queueRow {
	return &queueRow{player: player, createdAt: e.OccurredAt().UTC()}
}

// applyRecorded applies the event re of the row's stream, decoded as e,
// and returns the task_history row it finished, if any; applied is false
// for an event applied before (the row is ahead of the checkpoint only if
// a bug put it there). Apply and the bulk build (bulk.go) both fold
// through it, so they give the same rows.
func (r *queueRow) applyRecorded(re *eventstore.RecordedEvent, e domain.Event) (history []any, applied bool, err error) {
	if re.Version <= r.version {
		return nil, false, nil
	}
	h, err := r.apply(e, re.Version)
	if err != nil {
		return nil, false, fmt.Errorf("apply %s (version %d of %s at %s): %w", re.Type, re.Version, re.Stream, re.Position, err)
	}
	r.version = re.Version
	if at := e.OccurredAt().UTC(); at.After(r.updatedAt) {
		r.updatedAt = at
	}
	r.lastPos = re.Position
	return h, true, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// apply changes the row by one event and returns the task_history row the
// event finished, if any.
func (r *queueRow) apply(e domain.Event, version int64) ([]any, error) {
	switch e := e.(type) {
	case domain.TaskEnqueued:
		pos := min(max(e.Position, 0), len(r.tasks))
		r.tasks = slices.Insert(r.tasks, pos, queueTask{TaskID: string(e.TaskID), Type: string(e.Type), Count: e.Count, EnqueuedAt: e.EnqueuedAt.UTC()})
		r.stats[0]++
	case domain.TaskRemoved:
		t, err := r.remove(string(e.TaskID))
		if err != nil {
			return nil, err
		}
		r.stats[3]++
		return r.history(t, query.OutcomeCancelled, "", e.Done, e.At, version), nil
	case domain.TaskFailed:
		t, err := r.remove(string(e.TaskID))
		if err != nil {
			return nil, err
		}
		r.stats[2]++
		return r.history(t, query.OutcomeFailed, e.Reason, e.Done, e.At, version), nil
	case domain.TaskCompleted:
		t, err := r.remove(string(e.TaskID))
		if err != nil {
			return nil, err
		}
		r.stats[1]++
		return r.history(t, query.OutcomeCompleted, "", t.Done, e.At, version), nil
	case domain.TasksReordered:
		byID := make(map[string]queueTask, len(r.tasks))
		for _, t := range r.tasks {
			byID[t.TaskID] = t
		}
		keep := len(r.tasks) - len(e.Order)
		if keep < 0 {
			return nil, fmt.Errorf("reorder of %d tasks in a queue of %d", len(e.Order), len(r.tasks))
		}
		next := slices.Clone(r.tasks[:keep])
		for _, id := range e.Order {
			t, ok := byID[string(id)]
			if !ok {
				return nil, fmt.Errorf("reorder names task %q that is not queued", id)
			}
			next = append(next, t)
		}
		r.tasks = next
	case domain.QueueStopped:
		r.stopped, r.stoppedReason = true, e.Reason
	case domain.QueueStarted:
		r.stopped, r.stoppedReason = false, ""
	case domain.RepetitionStarted:
		if len(r.tasks) == 0 || r.tasks[0].TaskID != string(e.TaskID) {
			return nil, fmt.Errorf("repetition of %q, which is not the head", e.TaskID)
		}
		t := &r.tasks[0]
		if t.StartedAt == nil {
			at := e.StartedAt.UTC()
			t.StartedAt = &at
		}
		t.Consumed = addItems(t.Consumed, e.Consumed, 1)
		t.EffSum += e.Efficiency
		t.EffCount++
		rep := e
		r.rep = &rep
	case domain.RepetitionCompleted:
		if len(r.tasks) == 0 || r.tasks[0].TaskID != string(e.TaskID) {
			return nil, fmt.Errorf("completion of %q, which is not the head", e.TaskID)
		}
		t := &r.tasks[0]
		t.Done++
		t.XP += e.XP
		t.Granted = addItems(t.Granted, e.Granted, 1)
		r.rep = nil
		r.stats[4]++
		r.stats[5] += e.XP
	case domain.RepetitionCancelled:
		if len(r.tasks) > 0 && r.tasks[0].TaskID == string(e.TaskID) {
			t := &r.tasks[0]
			t.Consumed = addItems(t.Consumed, e.Refunded, -1)
			// The cancelled repetition's efficiency no longer counts.
			if r.rep != nil && t.EffCount > 0 {
				t.EffSum -= r.rep.Efficiency
				t.EffCount--
			}
		}
		r.rep = nil
	case domain.SkillLevelledUp:
		// progress only
	default:
		return nil, fmt.Errorf("%w: %T", domain.ErrUnknownEvent, e)
	}
	return nil, nil
}

func (r *queueRow) remove(id string) (queueTask, error) {
	for i, t := range r.tasks {
		if t.TaskID == id {
			r.tasks = slices.Delete(r.tasks, i, i+1)
			if i == 0 {
				r.rep = nil
			}
			return t, nil
		}
	}
	return queueTask{}, fmt.Errorf("task %q is not queued", id)
}

func (r *queueRow) history(t queueTask, outcome query.Outcome, reason string, done int, at time.Time, version int64) []any {
	at = at.UTC()
	var started any
	var duration any
	if t.StartedAt != nil {
		started = *t.StartedAt
		duration = at.Sub(*t.StartedAt).Milliseconds()
	}
	var eff any
	if t.EffCount > 0 {
		eff = t.EffSum / float64(t.EffCount)
	}
	return []any{r.player, t.TaskID, t.Type, outcome, reason, t.Count, done, t.EnqueuedAt, started, at, duration,
		t.XP, itemsJSON(t.Granted), itemsJSON(t.Consumed), eff, version}
}

func (r *queueRow) values() []any {
	var headID, headType, num, started, due, dur, eff any
	if len(r.tasks) > 0 {
		headID, headType = r.tasks[0].TaskID, r.tasks[0].Type
	}
	if r.rep != nil {
		num, started, due, dur, eff = r.rep.Number, r.rep.StartedAt.UTC(), r.rep.DueAt.UTC(), r.rep.DurationMs, r.rep.Efficiency
	}
	tasks := r.tasks
	if tasks == nil {
		tasks = []queueTask{}
	}
	b, _ := json.Marshal(tasks) // plain data: cannot fail
	if !r.lastPos.IsZero() {
		r.lastPosition, r.lastPos = r.lastPos.String(), eventstore.Position{}
	}
	return []any{r.player, r.version, !r.stopped, r.stopped, r.stoppedReason, headID, headType, num, started, due,
		dur, eff, len(r.tasks), string(b), r.stats[0], r.stats[1], r.stats[2], r.stats[3], r.stats[4], r.stats[5],
		r.createdAt, r.updatedAt, r.lastPosition}
}

func addItems[K ~string](into map[string]int64, from map[K]int64, sign int64) map[string]int64 {
	for k, n := range from {
		if into == nil {
			into = map[string]int64{}
		}
		into[string(k)] += sign * n
		if into[string(k)] == 0 {
			delete(into, string(k))
		}
	}
	return into
}

func itemsJSON(m map[string]int64) string {
	if m == nil {
		return "{}"
	}
	b, _ := json.Marshal(m) // map[string]int64 always marshals
	return string(b)
}

// decode returns the player of a queue stream's event and the domain event;
// ok is false for an event of another stream (the projections skip those).
// An event of a queue stream that does not decode is an error: the
// projection fails on it rather than skip it silently.
func decode(re *eventstore.RecordedEvent) (player string, e domain.Event, ok bool, err error) {
	p, ok := domain.PlayerFromStream(re.Stream)
	if !ok {
		return "", nil, false, nil
	}
	e, err = domain.DecodeEvent(re.Type, re.SchemaVersion, re.Data)
	if err != nil {
		return "", nil, false, fmt.Errorf("event %s at %s: %w", re.ID, re.Position, err)
	}
	return string(p), e, true, nil
}

func playersOf(events []eventstore.RecordedEvent) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range events {
		if p, ok := domain.PlayerFromStream(e.Stream); ok && !seen[string(p)] {
			seen[string(p)] = true
			out = append(out, string(p))
		}
	}
	return out
}

// ensureDayPartitions creates the daily partitions of a PostgreSQL table
// partitioned by a timestamp that rows (column col) fall into.
func ensureDayPartitions(ctx context.Context, tx Tx, table string, rows [][]any, col int) error {
	days := map[time.Time]bool{}
	for _, r := range rows {
		if at, ok := r[col].(time.Time); ok {
			days[at.UTC().Truncate(24*time.Hour)] = true
		}
	}
	for _, d := range slices.SortedFunc(maps.Keys(days), func(a, b time.Time) int { return a.Compare(b) }) {
		name := table + "_p" + d.Format("20060102")
		stmt := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')",
			name, table, d.Format(time.RFC3339), d.Add(24*time.Hour).Format(time.RFC3339))
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("create partition %s: %w", name, err)
		}
	}
	return nil
}

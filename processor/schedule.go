package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/migrations"
	"github.com/taskqueue/taskqueue/projections"
)

// ScheduleName keys the schedule's checkpoint in projection_checkpoints:
// renaming it rebuilds the schedule from position 0.
const ScheduleName = "processor_schedule"

// Schedule is the projection of due repetitions: one row per player whose
// queue has a running repetition (stream, task, repetition number, due
// time), in table processor_schedule (migration 0030). It runs on the
// projections.Runner, so its rows and its checkpoint commit in one
// transaction. Deterministic; safe for use by one goroutine at a time, as
// the runner uses it.
type Schedule struct{}

// Name implements projections.Projection.
func (Schedule) Name() string { return ScheduleName }

// Version implements projections.Projection.
func (Schedule) Version() int { return 1 }

// Tables implements projections.Projection.
func (Schedule) Tables() []string { return []string{"processor_schedule"} }

// Filter reads the three events that start and end repetitions.
func (Schedule) Filter() eventstore.Filter {
	return eventstore.Filter{
		EventTypes: []string{
			string(domain.TypeRepetitionStarted),
			string(domain.TypeRepetitionCompleted),
			string(domain.TypeRepetitionCancelled),
		},
		StreamPrefixes: []string{domain.StreamPrefix},
	}
}

// scheduleRow is one running repetition; nil in a batch's map means the
// stream has none.
type scheduleRow struct {
	player    string
	taskID    string
	number    int
	dueAt     time.Time
	startedAt time.Time
}

// Apply folds the batch in memory (the last event of each stream decides
// its row) and writes it back with multi-row deletes and upserts.
func (Schedule) Apply(ctx context.Context, tx projections.Tx, t projections.Tables, events []eventstore.RecordedEvent) error {
	table := t.Name("processor_schedule")
	rows := map[string]*scheduleRow{}
	ended := map[string][2]any{} // stream -> (task, number) that ended, when no row is known in the batch
	for _, e := range events {
		player, ok := domain.PlayerFromStream(e.Stream)
		if !ok {
			continue
		}
		switch domain.EventType(e.Type) {
		case domain.TypeRepetitionStarted:
			var d struct {
				TaskID    string    `json:"taskId"`
				Number    int       `json:"number"`
				StartedAt time.Time `json:"startedAt"`
				DueAt     time.Time `json:"dueAt"`
			}
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return fmt.Errorf("decode %s %s at %s: %w", e.Type, e.ID, e.Position, err)
			}
			rows[e.Stream] = &scheduleRow{player: string(player), taskID: d.TaskID, number: d.Number, dueAt: d.DueAt.UTC(), startedAt: d.StartedAt.UTC()}
			delete(ended, e.Stream)
		case domain.TypeRepetitionCompleted, domain.TypeRepetitionCancelled:
			var d struct {
				TaskID string `json:"taskId"`
				Number int    `json:"number"`
			}
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return fmt.Errorf("decode %s %s at %s: %w", e.Type, e.ID, e.Position, err)
			}
			if r, ok := rows[e.Stream]; ok && r != nil {
				if r.taskID == d.TaskID && r.number == d.Number {
					rows[e.Stream] = nil
				}
				continue
			}
			if _, ok := rows[e.Stream]; !ok {
				ended[e.Stream] = [2]any{d.TaskID, d.Number}
			}
		}
	}
	streams := make([]string, 0, len(rows)+len(ended))
	for s := range rows {
		streams = append(streams, s)
	}
	for s := range ended {
		streams = append(streams, s)
	}
	sort.Strings(streams)
	var upserts [][]any
	var gone []string   // streams whose row goes, whatever it holds
	var endedKeys []any // (stream, task, number) of rows that go only if they hold that repetition
	for _, s := range streams {
		if te, ok := ended[s]; ok {
			// The repetition the table holds for s ended (the batch started
			// no other one): delete it if it is that one.
			endedKeys = append(endedKeys, s, te[0], te[1])
			continue
		}
		r := rows[s]
		if r == nil {
			gone = append(gone, s)
			continue
		}
		upserts = append(upserts, []any{s, r.player, r.taskID, r.number, r.dueAt, r.startedAt})
	}
	if err := deleteRows(ctx, tx, table, gone, endedKeys); err != nil {
		return err
	}
	return upsertRows(ctx, tx, table, upserts)
}

// deleteBatch bounds the rows one DELETE names.
const deleteBatch = 1000

// deleteRows deletes the rows of the streams gone, and the rows of the
// (stream, task, number) triples of ended that still hold that repetition,
// up to deleteBatch rows per statement (one statement per row cost a round
// trip per emptied queue inside the schedule's transaction).
func deleteRows(ctx context.Context, tx projections.Tx, table string, gone []string, ended []any) error {
	if tx.Dialect() == migrations.Postgres {
		return deleteRowsPostgres(ctx, tx, table, gone, ended)
	}
	for start := 0; start < len(gone); start += deleteBatch {
		chunk := gone[start:min(start+deleteBatch, len(gone))]
		var q strings.Builder
		q.WriteString("DELETE FROM " + table + " WHERE stream_id IN (")
		args := make([]any, len(chunk))
		for i, s := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			fmt.Fprintf(&q, "$%d", i+1)
			args[i] = s
		}
		q.WriteString(")")
		if _, err := tx.Exec(ctx, projections.Unprepared(q.String()), args...); err != nil {
			return fmt.Errorf("delete %d schedule rows from %s: %w", len(chunk), table, err)
		}
	}
	for start := 0; start < len(ended); start += 3 * deleteBatch {
		args := ended[start:min(start+3*deleteBatch, len(ended))]
		var q strings.Builder
		q.WriteString("DELETE FROM " + table + " WHERE ")
		for i := 0; i < len(args); i += 3 {
			if i > 0 {
				q.WriteString(" OR ")
			}
			fmt.Fprintf(&q, "(stream_id = $%d AND task_id = $%d AND number = $%d)", i+1, i+2, i+3)
		}
		if _, err := tx.Exec(ctx, projections.Unprepared(q.String()), args...); err != nil {
			return fmt.Errorf("delete %d ended repetitions from %s: %w", len(args)/3, table, err)
		}
	}
	return nil
}

// upsertRows writes schedule rows, a few thousand per statement.
func upsertRows(ctx context.Context, tx projections.Tx, table string, rows [][]any) error {
	if tx.Dialect() == migrations.Postgres {
		return upsertRowsPostgres(ctx, tx, table, rows)
	}
	const cols = 6
	const per = 30000 / cols
	for start := 0; start < len(rows); start += per {
		chunk := rows[start:min(start+per, len(rows))]
		var q strings.Builder
		q.WriteString("INSERT INTO " + table + " (stream_id, player_id, task_id, number, due_at, started_at) VALUES ")
		args := make([]any, 0, len(chunk)*cols)
		for i, r := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6)
			args = append(args, r...)
		}
		q.WriteString(" ON CONFLICT (stream_id) DO UPDATE SET player_id = excluded.player_id, task_id = excluded.task_id," +
			" number = excluded.number, due_at = excluded.due_at, started_at = excluded.started_at")
		if _, err := tx.Exec(ctx, projections.Unprepared(q.String()), args...); err != nil {
			return fmt.Errorf("upsert %d schedule rows into %s: %w", len(chunk), table, err)
		}
	}
	return nil
}

// deleteRowsPostgres is deleteRows on PostgreSQL: one statement for the
// streams gone and one for the ended repetitions, each taking its keys as
// arrays. Their texts are fixed (prepared once per connection), where an
// OR of a thousand (stream, task, number) triples was planned anew every
// time, as a thousand-branch bitmap OR: the statement that took most of the
// schedule's time while it followed a burst of completions.
func deleteRowsPostgres(ctx context.Context, tx projections.Tx, table string, gone []string, ended []any) error {
	if len(gone) > 0 {
		if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE stream_id = ANY($1::text[])", gone); err != nil {
			return fmt.Errorf("delete %d schedule rows from %s: %w", len(gone), table, err)
		}
	}
	if len(ended) == 0 {
		return nil
	}
	streams := make([]string, 0, len(ended)/3)
	tasks := make([]string, 0, len(ended)/3)
	numbers := make([]int64, 0, len(ended)/3)
	for i := 0; i < len(ended); i += 3 {
		streams = append(streams, ended[i].(string))
		tasks = append(tasks, ended[i+1].(string))
		numbers = append(numbers, int64(ended[i+2].(int)))
	}
	if _, err := tx.Exec(ctx, "DELETE FROM "+table+" AS s USING unnest($1::text[], $2::text[], $3::int8[]) AS k(stream_id, task_id, number)"+
		" WHERE s.stream_id = k.stream_id AND s.task_id = k.task_id AND s.number = k.number", streams, tasks, numbers); err != nil {
		return fmt.Errorf("delete %d ended repetitions from %s: %w", len(streams), table, err)
	}
	return nil
}

// upsertRowsPostgres is upsertRows on PostgreSQL: one statement whose
// columns are arrays (a fixed text, prepared once per connection, instead
// of a multi-row VALUES of thousands of parameters planned every time).
func upsertRowsPostgres(ctx context.Context, tx projections.Tx, table string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	streams := make([]string, len(rows))
	players := make([]string, len(rows))
	tasks := make([]string, len(rows))
	numbers := make([]int64, len(rows))
	dues := make([]time.Time, len(rows))
	starts := make([]time.Time, len(rows))
	for i, r := range rows {
		streams[i], players[i], tasks[i] = r[0].(string), r[1].(string), r[2].(string)
		numbers[i], dues[i], starts[i] = int64(r[3].(int)), r[4].(time.Time), r[5].(time.Time)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (stream_id, player_id, task_id, number, due_at, started_at)"+
		" SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::timestamptz[], $6::timestamptz[])"+
		" ON CONFLICT (stream_id) DO UPDATE SET player_id = excluded.player_id, task_id = excluded.task_id,"+
		" number = excluded.number, due_at = excluded.due_at, started_at = excluded.started_at",
		streams, players, tasks, numbers, dues, starts); err != nil {
		return fmt.Errorf("upsert %d schedule rows into %s: %w", len(rows), table, err)
	}
	return nil
}

// ForgetPlayer implements projections.PlayerForgetter: the player's row, so
// the processor never takes up a forgotten player's repetition, and the
// claims on the player's queue.
func (Schedule) ForgetPlayer(ctx context.Context, tx projections.Tx, t projections.Tables, player domain.PlayerID) (int64, bool, error) {
	n, err := tx.Exec(ctx, `DELETE FROM `+t.Name("processor_schedule")+` WHERE player_id = $1`, string(player))
	if err != nil {
		return n, false, err
	}
	m, err := tx.Exec(ctx, `DELETE FROM processor_claims WHERE stream_id = $1`, player.Stream())
	return n + m, false, err
}

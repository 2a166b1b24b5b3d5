package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/migrations"
	"github.com/taskqueue/taskqueue/query"
)

// ReadModels reads the read models through their views (never a
// generation's tables), for the handlers of query/. Safe for concurrent use.
type ReadModels struct{ db Querier }

// NewReadModels returns the readers over db (on SQLite, a DB whose reader
// is the event store's read pool).
func NewReadModels(db Querier) *ReadModels { return &ReadModels{db} }

var (
	_ query.QueueViewReadModel      = (*ReadModels)(nil)
	_ query.HistoryReadModel        = (*ReadModels)(nil)
	_ query.PlayerProgressReadModel = (*ReadModels)(nil)
	_ query.AnalyticsReadModel      = (*ReadModels)(nil)
)

// QueueSnapshot implements query.QueueViewReadModel: queue_status and the
// player's skills and inventory from player_progress.
func (m *ReadModels) QueueSnapshot(ctx context.Context, player domain.PlayerID) (query.QueueSnapshot, error) {
	v := domain.QueueView{PlayerID: player, Running: true, Tasks: []domain.TaskView{},
		Skills: map[domain.SkillID]domain.SkillView{}, Inventory: map[domain.ItemID]int64{}}
	var (
		stopped      bool
		tasks        string
		num          *int64
		started, due Time
		durMs        *int64
		eff          *float64
		updated      Time
	)
	err := m.db.QueryRow(ctx, `SELECT stream_version, stopped, stopped_reason, tasks, repetition_number,
		repetition_started_at, repetition_due_at, repetition_duration_ms, repetition_efficiency, updated_at
		FROM queue_status WHERE player_id = $1`, string(player)).
		Scan(&v.Version, &stopped, &v.StoppedReason, &tasks, &num, &started, &due, &durMs, &eff, &updated)
	switch {
	case isNoRows(err):
		return query.QueueSnapshot{View: v}, nil
	case err != nil:
		return query.QueueSnapshot{}, fmt.Errorf("read queue_status of %s: %w", player, err)
	}
	v.Running = !stopped
	var ts []queueTask
	if err := json.Unmarshal([]byte(tasks), &ts); err != nil {
		return query.QueueSnapshot{}, fmt.Errorf("read queue_status of %s: tasks: %w", player, err)
	}
	for _, t := range ts {
		v.Tasks = append(v.Tasks, domain.TaskView{TaskID: domain.TaskID(t.TaskID), Type: domain.TaskTypeID(t.Type),
			Count: t.Count, Done: t.Done, EnqueuedAt: t.EnqueuedAt})
	}
	if num != nil && len(ts) > 0 {
		v.Repetition = &domain.RepetitionView{TaskID: domain.TaskID(ts[0].TaskID), Number: int(*num),
			StartedAt: started.Time, DueAt: due.Time, DurationMs: deref(durMs), Efficiency: deref(eff)}
	}
	if !updated.IsZero() {
		at := updated.Time
		v.UpdatedAt = &at
	}
	p, err := m.PlayerProgress(ctx, player)
	if err != nil {
		return query.QueueSnapshot{}, err
	}
	for s, sv := range p.Skills {
		if sv.XP > 0 {
			v.Skills[domain.SkillID(s)] = sv
		}
	}
	for it, n := range p.Inventory {
		if n != 0 {
			v.Inventory[domain.ItemID(it)] = n
		}
	}
	return query.QueueSnapshot{View: v, ProgressVersion: p.Version}, nil
}

// PlayerProgress implements query.PlayerProgressReadModel.
func (m *ReadModels) PlayerProgress(ctx context.Context, player domain.PlayerID) (query.PlayerProgressView, error) {
	out := query.PlayerProgressView{PlayerID: string(player)}
	var skills, inv string
	var at Time
	err := m.db.QueryRow(ctx, `SELECT skills, inventory, total_xp, total_level, stream_version, updated_at
		FROM player_progress WHERE player_id = $1`, string(player)).
		Scan(&skills, &inv, &out.TotalXP, &out.TotalLevel, &out.Version, &at)
	switch {
	case isNoRows(err):
		return out, nil
	case err != nil:
		return out, fmt.Errorf("read player_progress of %s: %w", player, err)
	}
	if err := json.Unmarshal([]byte(skills), &out.Skills); err != nil {
		return out, fmt.Errorf("read player_progress of %s: skills: %w", player, err)
	}
	if err := json.Unmarshal([]byte(inv), &out.Inventory); err != nil {
		return out, fmt.Errorf("read player_progress of %s: inventory: %w", player, err)
	}
	if !at.IsZero() {
		t := at.Time
		out.UpdatedAt = &t
	}
	return out, nil
}

// History implements query.HistoryReadModel: newest first, keyset
// pagination on (finished_at, task_id).
func (m *ReadModels) History(ctx context.Context, f query.HistoryFilter) ([]query.HistoryEntry, error) {
	var b strings.Builder
	b.WriteString(`SELECT task_id, task_type, outcome, reason, count, repetitions_done, enqueued_at, started_at,
		finished_at, duration_ms, xp, items_granted, items_consumed, efficiency FROM task_history WHERE player_id = $1`)
	args := []any{string(f.Player)}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Type != "" {
		b.WriteString(" AND task_type = " + arg(f.Type))
	}
	if !f.From.IsZero() {
		b.WriteString(" AND finished_at >= " + arg(f.From))
	}
	if !f.To.IsZero() {
		b.WriteString(" AND finished_at < " + arg(f.To))
	}
	if f.After != nil {
		at := arg(f.After.FinishedAt)
		at2 := arg(f.After.FinishedAt)
		b.WriteString(" AND (finished_at < " + at + " OR (finished_at = " + at2 + " AND task_id < " + arg(f.After.TaskID) + "))")
	}
	b.WriteString(" ORDER BY finished_at DESC, task_id DESC LIMIT " + arg(f.Limit))
	rows, err := m.db.Query(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("read task_history of %s: %w", f.Player, err)
	}
	defer rows.Close()
	var out []query.HistoryEntry
	for rows.Next() {
		var (
			e                  query.HistoryEntry
			enq, start, finish Time
			granted, consumed  string
		)
		if err := rows.Scan(&e.TaskID, &e.Type, &e.Outcome, &e.Reason, &e.Count, &e.RepetitionsDone, &enq, &start,
			&finish, &e.DurationMs, &e.XP, &granted, &consumed, &e.Efficiency); err != nil {
			return nil, fmt.Errorf("read task_history of %s: %w", f.Player, err)
		}
		e.EnqueuedAt, e.FinishedAt = enq.Time, finish.Time
		if !start.IsZero() {
			t := start.Time
			e.StartedAt = &t
		}
		if err := json.Unmarshal([]byte(granted), &e.ItemsGranted); err != nil {
			return nil, fmt.Errorf("read task_history of %s: items_granted: %w", f.Player, err)
		}
		if err := json.Unmarshal([]byte(consumed), &e.ItemsConsumed); err != nil {
			return nil, fmt.Errorf("read task_history of %s: items_consumed: %w", f.Player, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read task_history of %s: %w", f.Player, err)
	}
	return out, nil
}

// dayArgs bounds the inclusive day range [from's day, to's day] in the
// dialect's day type.
func (m *ReadModels) dayArgs(from, to time.Time) (any, any) {
	f, t := from.UTC().Truncate(24*time.Hour), to.UTC().Truncate(24*time.Hour)
	if m.db.Dialect() == migrations.SQLite {
		return f.Format(time.DateOnly), t.Format(time.DateOnly)
	}
	return f, t
}

// TaskDaily implements query.AnalyticsReadModel: the days of [from, to],
// both included.
func (m *ReadModels) TaskDaily(ctx context.Context, from, to time.Time, taskType string) ([]query.TaskDay, error) {
	f, t := m.dayArgs(from, to)
	q := `SELECT day, task_type, completions, failures, cancellations, repetitions, efficiency_sum, efficiency_count
		FROM analytics_task_daily WHERE day >= $1 AND day <= $2`
	args := []any{f, t}
	if taskType != "" {
		q += " AND task_type = $3"
		args = append(args, taskType)
	}
	rows, err := m.db.Query(ctx, q+" ORDER BY day, task_type", args...)
	if err != nil {
		return nil, fmt.Errorf("read analytics_task_daily: %w", err)
	}
	defer rows.Close()
	var out []query.TaskDay
	for rows.Next() {
		var d query.TaskDay
		var day Time
		var sum float64
		var n int64
		if err := rows.Scan(&day, &d.TaskType, &d.Completions, &d.Failures, &d.Cancellations, &d.Repetitions, &sum, &n); err != nil {
			return nil, fmt.Errorf("read analytics_task_daily: %w", err)
		}
		d.Day = day.Format(time.DateOnly)
		if n > 0 {
			// Rounded to 6 decimals: efficiency_sum is a float sum whose last
			// bits depend on the order it was added up in (event by event, or
			// a rebuild's bulk fold), which must not show in the answer.
			avg := math.Round(sum/float64(n)*1e6) / 1e6
			d.AverageEfficiency = &avg
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// GrantsDaily implements query.AnalyticsReadModel.
func (m *ReadModels) GrantsDaily(ctx context.Context, from, to time.Time) ([]query.GrantDay, error) {
	f, t := m.dayArgs(from, to)
	rows, err := m.db.Query(ctx, `SELECT day, kind, name, amount FROM analytics_grants_daily
		WHERE day >= $1 AND day <= $2 ORDER BY day, kind, name`, f, t)
	if err != nil {
		return nil, fmt.Errorf("read analytics_grants_daily: %w", err)
	}
	defer rows.Close()
	var out []query.GrantDay
	for rows.Next() {
		var g query.GrantDay
		var day Time
		if err := rows.Scan(&day, &g.Kind, &g.Name, &g.Amount); err != nil {
			return nil, fmt.Errorf("read analytics_grants_daily: %w", err)
		}
		g.Day = day.Format(time.DateOnly)
		out = append(out, g)
	}
	return out, rows.Err()
}

// ActivePlayersHourly implements query.AnalyticsReadModel: hours in
// [from, to).
func (m *ReadModels) ActivePlayersHourly(ctx context.Context, from, to time.Time) ([]query.ActiveHour, error) {
	rows, err := m.db.Query(ctx, `SELECT hour, count(*) FROM analytics_active_players_hourly
		WHERE hour >= $1 AND hour < $2 GROUP BY hour ORDER BY hour`, from.UTC().Truncate(time.Hour), to.UTC())
	if err != nil {
		return nil, fmt.Errorf("read analytics_active_players_hourly: %w", err)
	}
	defer rows.Close()
	var out []query.ActiveHour
	for rows.Next() {
		var h query.ActiveHour
		var at Time
		if err := rows.Scan(&at, &h.Players); err != nil {
			return nil, fmt.Errorf("read analytics_active_players_hourly: %w", err)
		}
		h.Hour = at.Time
		out = append(out, h)
	}
	return out, rows.Err()
}

// QueueLengths implements query.AnalyticsReadModel.
func (m *ReadModels) QueueLengths(ctx context.Context) ([]query.QueueLength, error) {
	rows, err := m.db.Query(ctx, `SELECT task_count, count(*) FROM analytics_queue_lengths GROUP BY task_count ORDER BY task_count`)
	if err != nil {
		return nil, fmt.Errorf("read analytics_queue_lengths: %w", err)
	}
	defer rows.Close()
	var out []query.QueueLength
	for rows.Next() {
		var l query.QueueLength
		if err := rows.Scan(&l.Length, &l.Players); err != nil {
			return nil, fmt.Errorf("read analytics_queue_lengths: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

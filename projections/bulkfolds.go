package projections

import (
	"context"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/migrations"
)

// The bulk folds of the three projections (see bulk.go): each folds one
// stream at a time through the code Apply uses, and writes every row once.

func (Queues) newBulkFold() bulkFold { return &queuesFold{partitions: map[time.Time]bool{}} }

type historyKey struct {
	finishedAt int64
	taskID     string
}

type queuesFold struct {
	row     *queueRow           // the current stream's
	seen    map[historyKey]bool // its history rows' keys: the first one wins, as ON CONFLICT DO NOTHING in Apply
	rows    [][]any             // queue_status rows, final
	history [][]any             // task_history rows, final
	// partitions are the days of task_history that exist already.
	partitions map[time.Time]bool
}

func (f *queuesFold) add(re *eventstore.RecordedEvent, player string, e domain.Event) error {
	if f.row == nil {
		f.row = newQueueRow(player, e)
		f.seen = map[historyKey]bool{}
	}
	h, _, err := f.row.applyRecorded(re, e)
	if err != nil || h == nil {
		return err
	}
	k := historyKey{h[9].(time.Time).UnixNano(), h[1].(string)}
	if !f.seen[k] {
		f.seen[k] = true
		f.history = append(f.history, h)
	}
	return nil
}

func (f *queuesFold) endStream() {
	if f.row != nil && f.row.version > 0 {
		f.rows = append(f.rows, f.row.values())
	}
	f.row, f.seen = nil, nil
}

func (f *queuesFold) take() bulkWrite {
	rows, history := f.rows, f.history
	f.rows, f.history = nil, nil
	var fresh [][]any // rows of days without a partition yet
	for _, h := range history {
		if d := h[9].(time.Time).UTC().Truncate(24 * time.Hour); !f.partitions[d] {
			f.partitions[d] = true
			fresh = append(fresh, h)
		}
	}
	return func(ctx context.Context, tx Tx, t Tables) error {
		if tx.Dialect() == migrations.Postgres {
			if err := ensureDayPartitions(ctx, tx, t.Name("task_history"), fresh, 9); err != nil {
				return err
			}
		}
		if err := copyRows(ctx, tx, t.Name("queue_status"), queueCols, rows); err != nil {
			return err
		}
		return copyRows(ctx, tx, t.Name("task_history"), historyCols, history)
	}
}

func (f *queuesFold) finish(context.Context, Tx, Tables) error { return nil }

func (PlayerProgress) newBulkFold() bulkFold { return &progressFold{} }

type progressFold struct {
	row  *progressRow
	rows [][]any
}

func (f *progressFold) add(re *eventstore.RecordedEvent, player string, e domain.Event) error {
	if f.row == nil {
		f.row = newProgressRow(player)
	}
	f.row.applyRecorded(re, e)
	return nil
}

func (f *progressFold) endStream() {
	if f.row != nil && f.row.version > 0 {
		f.rows = append(f.rows, f.row.values())
	}
	f.row = nil
}

func (f *progressFold) take() bulkWrite {
	rows := f.rows
	f.rows = nil
	return func(ctx context.Context, tx Tx, t Tables) error {
		return copyRows(ctx, tx, t.Name("player_progress"), progressCols, rows)
	}
}

func (f *progressFold) finish(context.Context, Tx, Tables) error { return nil }

func (Analytics) newBulkFold() bulkFold {
	all := newAnalyticsBatch()
	return &analyticsFold{all: all, cur: &analyticsBatch{tasks: all.tasks, grants: all.grants, hours: map[hourKey]int64{}, lengths: map[string]int64{}}}
}

// analyticsFold counts the day-keyed aggregates of the whole build in all
// (written by finish), and the per-player ones of the current stream in cur
// (final at its end); cur shares all's day-keyed maps.
type analyticsFold struct {
	all, cur      *analyticsBatch
	hours, length [][]any
}

func (f *analyticsFold) add(_ *eventstore.RecordedEvent, player string, e domain.Event) error {
	f.cur.add(player, e)
	return nil
}

func (f *analyticsFold) endStream() {
	f.hours = append(f.hours, f.cur.hourRows()...)
	f.length = append(f.length, f.cur.lengthRows()...)
	clear(f.cur.hours)
	clear(f.cur.lengths)
}

func (f *analyticsFold) take() bulkWrite {
	hours, length := f.hours, f.length
	f.hours, f.length = nil, nil
	return func(ctx context.Context, tx Tx, t Tables) error {
		if err := copyRows(ctx, tx, t.Name("analytics_active_players_hourly"), activeHourlyCols, hours); err != nil {
			return err
		}
		return copyRows(ctx, tx, t.Name("analytics_queue_lengths"), queueLengthCols, length)
	}
}

func (f *analyticsFold) finish(ctx context.Context, tx Tx, t Tables) error {
	pg := tx.Dialect() == migrations.Postgres
	if err := copyRows(ctx, tx, t.Name("analytics_task_daily"), taskDailyCols, f.all.taskRows(pg)); err != nil {
		return err
	}
	return copyRows(ctx, tx, t.Name("analytics_grants_daily"), grantsDailyCols, f.all.grantRows(pg))
}

package projections

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/taskqueue/taskqueue/migrations"
)

// Retention deletes task_history rows older than a number of days, in every
// generation of the table (the serving one and one being built). On
// PostgreSQL it drops whole daily partitions (no row-by-row delete, no
// bloat); on SQLite it deletes in small batches, each its own short
// transaction, so appends sharing the single writer wait only briefly.
//
// A rebuild replays old events and so re-creates old rows for a while; the
// next sweep removes them again.
type Retention struct {
	// DB holds the read models. Required.
	DB DB
	// Days is how many days of history to keep (setting
	// TASKQUEUE_HISTORY_RETENTION_DAYS, default 30). A row is deleted when
	// it finished before the start of the day Days days before now.
	Days int
	// BatchSize is the number of rows per SQLite delete. Default 500.
	BatchSize int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// SweepResult tells what a sweep removed.
type SweepResult struct {
	// Partitions dropped (PostgreSQL).
	Partitions int
	// Rows deleted (SQLite; on PostgreSQL the rows of dropped partitions
	// are not counted).
	Rows int64
}

// Cutoff returns the time before which history rows are removed.
func (r Retention) Cutoff() time.Time {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	days := r.Days
	if days <= 0 {
		days = 30
	}
	return now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -days)
}

// Sweep removes the expired rows once.
func (r Retention) Sweep(ctx context.Context) (SweepResult, error) {
	if r.DB == nil {
		return SweepResult{}, errors.New("retention sweep: no DB")
	}
	cutoff := r.Cutoff()
	cps, err := loadCheckpoints(ctx, r.DB, QueuesName)
	if err != nil {
		return SweepResult{}, fmt.Errorf("retention sweep: %w", err)
	}
	var res SweepResult
	for _, c := range cps {
		table := physical("task_history", c.generation)
		if r.DB.Dialect() == migrations.Postgres {
			n, err := r.dropPartitions(ctx, table, cutoff)
			res.Partitions += n
			if err != nil {
				return res, err
			}
			continue
		}
		n, err := r.deleteBatches(ctx, table, cutoff)
		res.Rows += n
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

func (r Retention) dropPartitions(ctx context.Context, table string, cutoff time.Time) (int, error) {
	rows, err := r.DB.Query(ctx, `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
		WHERE p.relname = $1 AND p.relnamespace = current_schema()::regnamespace`, table)
	if err != nil {
		return 0, fmt.Errorf("retention sweep: list partitions of %s: %w", table, err)
	}
	var expired []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return 0, fmt.Errorf("retention sweep: list partitions of %s: %w", table, err)
		}
		day, err := time.Parse("20060102", strings.TrimPrefix(name, table+"_p"))
		if err != nil {
			continue // not one of ours
		}
		if !day.Add(24 * time.Hour).After(cutoff) {
			expired = append(expired, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("retention sweep: list partitions of %s: %w", table, err)
	}
	for i, name := range expired {
		err := r.DB.InTx(ctx, func(tx Tx) error {
			_, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+name)
			return err
		})
		if err != nil {
			return i, fmt.Errorf("retention sweep: drop partition %s: %w", name, err)
		}
	}
	return len(expired), nil
}

func (r Retention) deleteBatches(ctx context.Context, table string, cutoff time.Time) (int64, error) {
	batch := r.BatchSize
	if batch <= 0 {
		batch = 500
	}
	var total int64
	for {
		var n int64
		err := r.DB.InTx(ctx, func(tx Tx) error {
			var err error
			n, err = tx.Exec(ctx, `DELETE FROM `+table+` WHERE rowid IN
				(SELECT rowid FROM `+table+` WHERE finished_at < $1 LIMIT $2)`, cutoff, batch)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("retention sweep: delete from %s: %w", table, err)
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}

// Run sweeps at once and then every interval (default 1 h) until ctx ends,
// reporting each sweep's error to onError (may be nil).
func (r Retention) Run(ctx context.Context, interval time.Duration, onError func(error)) {
	if interval <= 0 {
		interval = time.Hour
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := r.Sweep(ctx); err != nil && onError != nil && ctx.Err() == nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

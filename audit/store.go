package audit

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/taskqueue/taskqueue/projections"
)

// Store is the table audit_log of one database (migration 0071). Safe for
// concurrent use.
type Store struct {
	db projections.DB
}

// NewStore returns the audit log of db (migrated).
func NewStore(db projections.DB) *Store { return &Store{db: db} }

// Append stores entries in one transaction.
func (s *Store) Append(ctx context.Context, entries []Entry) error {
	err := s.db.InTx(ctx, func(tx projections.Tx) error {
		for _, e := range entries {
			if _, err := tx.Exec(ctx, `INSERT INTO audit_log (at, action, principal, role, remote, target, status, detail, request_id)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				e.At.UnixMilli(), string(e.Action), e.Principal, e.Role, e.Remote, e.Target, e.Status, clip(e.Detail, 1000), e.RequestID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store %d audit entries: %w", len(entries), err)
	}
	return nil
}

// Query returns the entries f selects, oldest first (the newest f.Limit
// when more match).
func (s *Store) Query(ctx context.Context, f Filter) ([]Entry, error) {
	limit := f.Limit
	if limit <= 0 || limit > MaxLimit {
		limit = MaxLimit
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if !f.Since.IsZero() {
		where = append(where, "at >= "+arg(f.Since.UnixMilli()))
	}
	if f.Player != "" {
		p := arg(f.Player)
		q := arg(f.Player)
		where = append(where, "(principal = "+p+" OR target = "+q+")")
	}
	if f.Action != "" {
		where = append(where, "action = "+arg(string(f.Action)))
	}
	q := `SELECT id, at, action, principal, role, remote, target, status, detail, request_id FROM audit_log`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT " + arg(limit)
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query the audit log: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var (
			e      Entry
			at     int64
			action string
			status int64
		)
		if err := rows.Scan(&e.ID, &at, &action, &e.Principal, &e.Role, &e.Remote, &e.Target, &status, &e.Detail, &e.RequestID); err != nil {
			return nil, fmt.Errorf("query the audit log: %w", err)
		}
		e.At, e.Action, e.Status = time.UnixMilli(at).UTC(), Action(action), int(status)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query the audit log: %w", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// MinRetention is the least retention: the table's trigger refuses to
// delete younger rows.
const MinRetention = 24 * time.Hour

// Sweep deletes the entries older than keep before now and returns how
// many.
func (s *Store) Sweep(ctx context.Context, now time.Time, keep time.Duration) (int64, error) {
	keep = max(keep, MinRetention)
	var n int64
	err := s.db.InTx(ctx, func(tx projections.Tx) error {
		var err error
		n, err = tx.Exec(ctx, `DELETE FROM audit_log WHERE at < $1`, now.Add(-keep).UnixMilli())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sweep the audit log: %w", err)
	}
	return n, nil
}

// RunRetention sweeps every interval until ctx ends, reporting failures to
// onError.
func (s *Store) RunRetention(ctx context.Context, interval, keep time.Duration, onError func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Sweep(ctx, time.Now(), keep); err != nil && ctx.Err() == nil && onError != nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

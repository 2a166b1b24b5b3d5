// Package sqlstore keeps login sessions in the service's database
// (SQLite or PostgreSQL, the read models' database, table login_sessions)
// for a deployment without Redis: a restart signs nobody out, and every
// instance sees one set of sessions. It implements sessions.Store.
//
// A row holds the SHA-256 of the session ID, never the ID itself, so the
// table lets nobody who can read it (an analyst, a backup) present a
// session. Times are Unix milliseconds.
package sqlstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/sessions"
)

// Store is the sessions table of one database. Safe for concurrent use.
type Store struct {
	db  projections.DB
	ttl time.Duration
}

var _ sessions.Store = (*Store)(nil)

// New returns the sessions of db (migrated: migration 0050), which expire
// ttl after their last refresh (sessions.TTL in the service).
func New(db projections.DB, ttl time.Duration) *Store { return &Store{db: db, ttl: ttl} }

func hash(sid string) string {
	sum := sha256.Sum256([]byte(sid))
	return hex.EncodeToString(sum[:])
}

// Put saves a new session.
func (s *Store) Put(ctx context.Context, sess sessions.Session) error {
	err := s.db.InTx(ctx, func(tx projections.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO login_sessions (id_hash, player_id, role, created_at, refreshed_at)
			VALUES ($1, $2, $3, $4, $5)`,
			hash(sess.ID), sess.PlayerID, string(sess.Role), sess.CreatedAt.UnixMilli(), sess.RefreshedAt.UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}

// Refresh moves the session's RefreshedAt to at, unless it is missing or
// expired before at.
func (s *Store) Refresh(ctx context.Context, sid string, at time.Time) (sessions.Session, bool, error) {
	var (
		sess             sessions.Session
		role             string
		created, touched int64
		ok               bool
	)
	err := s.db.InTx(ctx, func(tx projections.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE login_sessions SET refreshed_at = $2
			WHERE id_hash = $1 AND refreshed_at >= $3
			RETURNING player_id, role, created_at, refreshed_at`,
			hash(sid), at.UnixMilli(), at.Add(-s.ttl).UnixMilli())
		if err != nil {
			return err
		}
		defer rows.Close()
		if ok = rows.Next(); ok {
			if err := rows.Scan(&sess.PlayerID, &role, &created, &touched); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil || !ok {
		if err != nil {
			err = fmt.Errorf("refresh session: %w", err)
		}
		return sessions.Session{}, false, err
	}
	sess.ID, sess.Role = sid, auth.Role(role)
	sess.CreatedAt, sess.RefreshedAt = time.UnixMilli(created).UTC(), time.UnixMilli(touched).UTC()
	return sess, true, nil
}

// Active reports whether the session exists, unexpired at at.
func (s *Store) Active(ctx context.Context, sid string, at time.Time) (bool, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM login_sessions WHERE id_hash = $1 AND refreshed_at >= $2`,
		hash(sid), at.Add(-s.ttl).UnixMilli()).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up session: %w", err)
	}
	return n == 1, nil
}

// Delete removes the session.
func (s *Store) Delete(ctx context.Context, sid string) error {
	err := s.db.InTx(ctx, func(tx projections.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM login_sessions WHERE id_hash = $1`, hash(sid))
		return err
	})
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeletePlayer removes every session of player (a forgotten player).
func (s *Store) DeletePlayer(ctx context.Context, player string) (int, error) {
	var n int64
	err := s.db.InTx(ctx, func(tx projections.Tx) error {
		var err error
		n, err = tx.Exec(ctx, `DELETE FROM login_sessions WHERE player_id = $1`, player)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete the sessions of %s: %w", player, err)
	}
	return int(n), nil
}

// Sweep deletes the sessions expired at at.
func (s *Store) Sweep(ctx context.Context, at time.Time) error {
	err := s.db.InTx(ctx, func(tx projections.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM login_sessions WHERE refreshed_at < $1`, at.Add(-s.ttl).UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("sweep sessions: %w", err)
	}
	return nil
}

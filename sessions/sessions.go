// Package sessions owns login sessions: the tokens minted for one carry
// its ID in "sid", and a session revoked is refused everywhere (web's
// session check, the realtime hub's sockets). Sessions live in Redis when
// the service has one, else in the service's database (package sqlstore),
// else in this process; what each answers while its backend is away is on
// the Sessions type.
//
// The contract every backend passes: package sessionstest.
package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/redisx"
)

// TTL is how long a session lives after its creation or last refresh.
const TTL = 24 * time.Hour

// ErrNoSession is returned by Refresh for a session that does not exist:
// never created, expired or revoked.
var ErrNoSession = errors.New("no such session")

// Session is a login: the tokens minted for it carry its ID in "sid".
type Session struct {
	ID          string    `json:"id"`
	PlayerID    string    `json:"playerId"`
	Role        auth.Role `json:"role"`
	CreatedAt   time.Time `json:"createdAt"`
	RefreshedAt time.Time `json:"refreshedAt"`
}

// Sessions keeps sessions in session:{sessionId} (TTL 24 h, renewed
// by Refresh) and revokes them everywhere at once: Revoke deletes the key,
// remembers the ID in-process, calls the OnRevoke callbacks here and
// publishes the ID on the session-revoked channel, whose subscribers (every
// other instance) call theirs (the realtime hub closes the session's
// sockets).
//
// Without Redis, sessions live in a Store (NewDurable: the
// service's database, so a restart signs nobody out and every instance
// sees one set), or, with none, in this process only. While Redis is down,
// Active answers from this process's memory: sessions revoked here stay
// revoked, and any other session is taken as active (fail open: the token's
// signature and expiry still hold); the outage is logged once. Sessions
// created during an outage are lost when Redis returns. A durable store
// that cannot be reached is answered for the same way (fail open). Safe for
// concurrent use.
type Sessions struct {
	c       *redisx.Client
	durable Store // without Redis; nil: in-process
	now     func() time.Time

	mu        sync.Mutex
	local     map[string]Session   // without Redis, and created during an outage
	lastSweep time.Time            // of local's expired sessions
	revoked   map[string]time.Time // revoked here: until when to remember
	onRevoke  []func(sid string)

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

const (
	sessionFamily  = "session:"
	revokedChannel = "session-revoked"
)

// New returns the sessions on c (nil: in-process only). Close them to stop
// listening for revocations.
func New(c *redisx.Client) *Sessions {
	s := &Sessions{c: c, now: time.Now, local: map[string]Session{}, revoked: map[string]time.Time{}}
	if c != nil {
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel = cancel
		ps := c.Redis().Subscribe(ctx, c.Key(revokedChannel, ""))
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer ps.Close()
			ch := ps.Channel()
			for {
				select {
				case <-ctx.Done():
					return
				case m, ok := <-ch:
					if !ok {
						return
					}
					s.revokedHere(m.Payload)
				}
			}
		}()
	}
	return s
}

// Store keeps the sessions of a deployment without Redis, durably
// (package sqlstore). A session expires TTL after its last
// refresh. Safe for concurrent use.
type Store interface {
	// Put saves a new session.
	Put(ctx context.Context, sess Session) error
	// Refresh sets the session's RefreshedAt to at and returns it, unless
	// it does not exist or expired before at (ok false).
	Refresh(ctx context.Context, sid string, at time.Time) (_ Session, ok bool, _ error)
	// Active reports whether the session exists and has not expired at at.
	Active(ctx context.Context, sid string, at time.Time) (bool, error)
	// Delete removes the session (a missing one is no error).
	Delete(ctx context.Context, sid string) error
	// DeletePlayer removes every session of player and reports how many.
	DeletePlayer(ctx context.Context, player string) (int, error)
	// Sweep deletes the sessions expired at at.
	Sweep(ctx context.Context, at time.Time) error
}

// NewDurable returns the sessions of a deployment without Redis,
// kept in store. A session revoked on one instance is refused by every
// other at its next request (its sockets there stay open until their token
// expires: closing them needs Redis's channel).
func NewDurable(store Store) *Sessions {
	return &Sessions{durable: store, now: time.Now, local: map[string]Session{}, revoked: map[string]time.Time{}}
}

// Close stops listening for revocations.
func (s *Sessions) Close() {
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
	}
}

// OnRevoke registers f to be called with the ID of every session revoked,
// here or on another instance.
func (s *Sessions) OnRevoke(f func(sid string)) {
	s.mu.Lock()
	s.onRevoke = append(s.onRevoke, f)
	s.mu.Unlock()
}

// Create starts a session for player acting as role.
func (s *Sessions) Create(ctx context.Context, player string, role auth.Role) (Session, error) {
	if !auth.ValidPlayerID(player) || !role.Valid() {
		return Session{}, fmt.Errorf("create session: player %q or role %q is not valid", player, role)
	}
	now := s.now().UTC()
	sess := Session{ID: uuid.NewString(), PlayerID: player, Role: role, CreatedAt: now, RefreshedAt: now}
	if s.redisUp() {
		b, _ := json.Marshal(sess)
		cctx, cancel := s.c.Bound(ctx)
		err := s.c.Redis().Set(cctx, s.c.Key(sessionFamily, sess.ID), b, TTL).Err()
		cancel()
		s.c.Observe(ctx, err)
		if err == nil {
			return sess, nil
		}
	}
	if s.durable != nil {
		if err := s.durable.Put(ctx, sess); err != nil {
			return Session{}, fmt.Errorf("create session: %w", err)
		}
		s.sweepDurable(ctx, now)
		return sess, nil
	}
	s.mu.Lock()
	s.sweepLocked(now)
	s.local[sess.ID] = sess
	s.mu.Unlock()
	return sess, nil
}

// sweepDurable deletes the durable sessions expired at now, at most once a
// minute per process; a failed sweep is tried again at the next sign-in.
func (s *Sessions) sweepDurable(ctx context.Context, now time.Time) {
	s.mu.Lock()
	due := now.Sub(s.lastSweep) >= time.Minute
	if due {
		s.lastSweep = now
	}
	s.mu.Unlock()
	if due && s.durable.Sweep(ctx, now) != nil {
		s.mu.Lock()
		s.lastSweep = time.Time{}
		s.mu.Unlock()
	}
}

// sweepLocked drops the in-process sessions expired at now, at most once a
// minute. An expired session is deleted when it is looked up, but one that
// nobody uses again (a dev token thrown away, a browser closed) is never
// looked up: without the sweep the map grew by one session per sign-in
// for the life of the process. s.mu is held.
func (s *Sessions) sweepLocked(now time.Time) {
	if now.Sub(s.lastSweep) < time.Minute {
		return
	}
	s.lastSweep = now
	for id, sess := range s.local {
		if now.Sub(sess.RefreshedAt) > TTL {
			delete(s.local, id)
		}
	}
}

// Refresh renews the session's TTL and returns it; ErrNoSession when it
// expired or was revoked; an error wrapping faults.ErrUnavailable when the
// session is in Redis and Redis is down (whether it was revoked meanwhile
// cannot be known).
func (s *Sessions) Refresh(ctx context.Context, sid string) (Session, error) {
	if s.isRevoked(sid) {
		return Session{}, fmt.Errorf("refresh session %s: %w", sid, ErrNoSession)
	}
	now := s.now().UTC()
	if s.durable != nil {
		sess, ok, err := s.durable.Refresh(ctx, sid, now)
		switch {
		case err != nil:
			return Session{}, fmt.Errorf("refresh session %s: %w", sid, err)
		case !ok:
			return Session{}, fmt.Errorf("refresh session %s: %w", sid, ErrNoSession)
		}
		return sess, nil
	}
	if s.redisUp() {
		key := s.c.Key(sessionFamily, sid)
		cctx, cancel := s.c.Bound(ctx)
		b, err := s.c.Redis().Get(cctx, key).Bytes()
		cancel()
		s.c.Observe(ctx, err)
		switch {
		case errors.Is(err, redis.Nil):
			if sess, ok := s.localSession(sid, now); ok {
				return sess, nil
			}
			return Session{}, fmt.Errorf("refresh session %s: %w", sid, ErrNoSession)
		case err == nil:
			var sess Session
			if err := json.Unmarshal(b, &sess); err != nil {
				return Session{}, fmt.Errorf("refresh session %s: %w", sid, err)
			}
			sess.RefreshedAt = now
			b, _ = json.Marshal(sess)
			// XX: a session revoked meanwhile stays revoked.
			cctx, cancel := s.c.Bound(ctx)
			err = s.c.Redis().SetArgs(cctx, key, b, redis.SetArgs{Mode: "XX", TTL: TTL}).Err()
			cancel()
			s.c.Observe(ctx, err)
			if errors.Is(err, redis.Nil) {
				return Session{}, fmt.Errorf("refresh session %s: %w", sid, ErrNoSession)
			}
			if err == nil {
				return sess, nil
			}
		}
	}
	if sess, ok := s.localSession(sid, now); ok {
		return sess, nil
	}
	if s.c != nil {
		return Session{}, fmt.Errorf("refresh session %s: redis is down: %w", sid, faults.ErrUnavailable)
	}
	return Session{}, fmt.Errorf("refresh session %s: %w", sid, ErrNoSession)
}

// localActive reports whether an in-process session exists and has not
// expired at now, without renewing it (only Refresh renews a session).
func (s *Sessions) localActive(sid string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.local[sid]
	if !ok || now.Sub(sess.RefreshedAt) > TTL {
		delete(s.local, sid)
		return false
	}
	return true
}

// localSession renews and returns an in-process session.
func (s *Sessions) localSession(sid string, now time.Time) (Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.local[sid]
	if !ok || now.Sub(sess.RefreshedAt) > TTL {
		delete(s.local, sid)
		return Session{}, false
	}
	sess.RefreshedAt = now
	s.local[sid] = sess
	return sess, true
}

// Revoke ends the session everywhere at once. With Redis down it is
// revoked on this instance only and the error wraps faults.ErrUnavailable:
// send it again once Redis is back.
func (s *Sessions) Revoke(ctx context.Context, sid string) error {
	s.revokedHere(sid)
	if s.durable != nil {
		if err := s.durable.Delete(ctx, sid); err != nil {
			return fmt.Errorf("revoke session %s: revoked on this instance only: %w", sid, err)
		}
		return nil
	}
	if s.c == nil {
		return nil
	}
	if !s.c.Up() {
		return fmt.Errorf("revoke session %s: redis is down; revoked on this instance only: %w", sid, faults.ErrUnavailable)
	}
	cctx, cancel := s.c.Bound(ctx)
	defer cancel()
	err := s.c.Redis().Del(cctx, s.c.Key(sessionFamily, sid)).Err()
	if err == nil {
		err = s.c.Redis().Publish(cctx, s.c.Key(revokedChannel, ""), sid).Err()
	}
	s.c.Observe(ctx, err)
	if err != nil {
		return fmt.Errorf("revoke session %s: %w", sid, err)
	}
	return nil
}

// revokedHere records a revocation in this process and tells the
// callbacks.
func (s *Sessions) revokedHere(sid string) {
	s.mu.Lock()
	delete(s.local, sid)
	now := s.now()
	s.revoked[sid] = now.Add(TTL)
	for id, until := range s.revoked {
		if now.After(until) {
			delete(s.revoked, id)
		}
	}
	fs := append([]func(string){}, s.onRevoke...)
	s.mu.Unlock()
	for _, f := range fs {
		f(sid)
	}
}

func (s *Sessions) isRevoked(sid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.revoked[sid]
	return ok
}

func (s *Sessions) redisUp() bool { return s.c != nil && s.c.Up() }

// Active reports whether the session exists and was not revoked (see the
// type's doc for what it answers while Redis is down).
func (s *Sessions) Active(ctx context.Context, sid string) (bool, error) {
	if s.isRevoked(sid) {
		return false, nil
	}
	if s.durable != nil {
		ok, err := s.durable.Active(ctx, sid, s.now().UTC())
		if err != nil {
			return true, nil // the database is down: fail open, as while Redis is down
		}
		return ok, nil
	}
	if s.redisUp() {
		cctx, cancel := s.c.Bound(ctx)
		n, err := s.c.Redis().Exists(cctx, s.c.Key(sessionFamily, sid)).Result()
		cancel()
		s.c.Observe(ctx, err)
		if err == nil {
			if n == 1 {
				return true, nil
			}
			return s.localActive(sid, s.now().UTC()), nil
		}
	}
	if s.c != nil {
		return true, nil // Redis down: fail open, see the type's doc
	}
	return s.localActive(sid, s.now().UTC()), nil
}

// RevokePlayer revokes every session of player, as Revoke does one (the
// sockets of those sessions close on every instance), and returns how many
// it found. On Redis it scans session:*, once per call: forgetting is rare.
func (s *Sessions) RevokePlayer(ctx context.Context, player string) (int, error) {
	s.mu.Lock()
	var sids []string
	for sid, sess := range s.local {
		if sess.PlayerID == player {
			sids = append(sids, sid)
		}
	}
	s.mu.Unlock()
	for _, sid := range sids {
		s.revokedHere(sid)
	}
	n := len(sids)
	if s.durable != nil {
		m, err := s.durable.DeletePlayer(ctx, player)
		if err != nil {
			return n, fmt.Errorf("revoke the sessions of %s: %w", player, err)
		}
		return n + m, nil
	}
	if s.c == nil {
		return n, nil
	}
	if !s.c.Up() {
		return n, fmt.Errorf("revoke the sessions of %s: %w", player, faults.ErrUnavailable)
	}
	// Every master of a cluster (at once): a cluster client scans one node
	// only.
	var (
		mu        sync.Mutex
		revokeErr error
	)
	err := s.c.EachServer(ctx, func(ctx context.Context, rdb redis.UniversalClient) error {
		iter := rdb.Scan(ctx, 0, s.c.Key(sessionFamily, "*"), 1000).Iterator()
		for iter.Next(ctx) {
			b, err := rdb.Get(ctx, iter.Val()).Bytes()
			if err != nil {
				continue // expired meanwhile
			}
			var sess Session
			if json.Unmarshal(b, &sess) != nil || sess.PlayerID != player {
				continue
			}
			err = s.Revoke(ctx, sess.ID)
			mu.Lock()
			if err != nil {
				revokeErr = err
			} else {
				n++
			}
			mu.Unlock()
			if err != nil {
				return err
			}
		}
		return iter.Err()
	})
	mu.Lock()
	defer mu.Unlock()
	if revokeErr != nil {
		return n, revokeErr
	}
	if err != nil {
		s.c.Observe(ctx, err)
		return n, fmt.Errorf("revoke the sessions of %s: %w", player, err)
	}
	return n, nil
}

package redisx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/web/auth"
)

// SessionTTL is how long a session lives after its creation or last refresh.
const SessionTTL = 24 * time.Hour

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

// Sessions keeps sessions in session:{sessionId} (TTL SessionTTL, renewed
// by Refresh) and revokes them everywhere at once: Revoke deletes the key,
// remembers the ID in-process, calls the OnRevoke callbacks here and
// publishes the ID on the session-revoked channel, whose subscribers (every
// other instance) call theirs (the realtime hub closes the session's
// sockets).
//
// Without Redis, sessions live in this process only. While Redis is down,
// Active answers from this process's memory: sessions revoked here stay
// revoked, and any other session is taken as active (fail open: the token's
// signature and expiry still hold); the outage is logged once. Sessions
// created during an outage are lost when Redis returns. Safe for
// concurrent use.
type Sessions struct {
	c   *Client
	now func() time.Time

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

// NewSessions returns the session store on c (nil: in-process only). Close
// it to stop listening for revocations.
func NewSessions(c *Client) *Sessions {
	s := &Sessions{c: c, now: time.Now, local: map[string]Session{}, revoked: map[string]time.Time{}}
	if c != nil {
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel = cancel
		ps := c.rdb.Subscribe(ctx, c.key(revokedChannel, ""))
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
		err := s.c.rdb.Set(ctx, s.c.key(sessionFamily, sess.ID), b, SessionTTL).Err()
		s.c.observe(ctx, err)
		if err == nil {
			return sess, nil
		}
	}
	s.mu.Lock()
	s.sweepLocked(now)
	s.local[sess.ID] = sess
	s.mu.Unlock()
	return sess, nil
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
		if now.Sub(sess.RefreshedAt) > SessionTTL {
			delete(s.local, id)
		}
	}
}

// Refresh renews the session's TTL and returns it; ErrNoSession when it
// expired or was revoked.
func (s *Sessions) Refresh(ctx context.Context, sid string) (Session, error) {
	if s.isRevoked(sid) {
		return Session{}, fmt.Errorf("refresh session %s: %w", sid, ErrNoSession)
	}
	now := s.now().UTC()
	if s.redisUp() {
		key := s.c.key(sessionFamily, sid)
		b, err := s.c.rdb.Get(ctx, key).Bytes()
		s.c.observe(ctx, err)
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
			err = s.c.rdb.SetArgs(ctx, key, b, redis.SetArgs{Mode: "XX", TTL: SessionTTL}).Err()
			s.c.observe(ctx, err)
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
		return Session{}, fmt.Errorf("refresh session %s: redis is down", sid)
	}
	return Session{}, fmt.Errorf("refresh session %s: %w", sid, ErrNoSession)
}

// localSession renews and returns an in-process session.
func (s *Sessions) localSession(sid string, now time.Time) (Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.local[sid]
	if !ok || now.Sub(sess.RefreshedAt) > SessionTTL {
		delete(s.local, sid)
		return Session{}, false
	}
	sess.RefreshedAt = now
	s.local[sid] = sess
	return sess, true
}

// Revoke ends the session everywhere at once.
func (s *Sessions) Revoke(ctx context.Context, sid string) error {
	s.revokedHere(sid)
	if s.c == nil {
		return nil
	}
	if !s.c.Up() {
		return fmt.Errorf("revoke session %s: redis is down; revoked on this instance only", sid)
	}
	err := s.c.rdb.Del(ctx, s.c.key(sessionFamily, sid)).Err()
	if err == nil {
		err = s.c.rdb.Publish(ctx, s.c.key(revokedChannel, ""), sid).Err()
	}
	s.c.observe(ctx, err)
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
	s.revoked[sid] = now.Add(SessionTTL)
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
	if s.redisUp() {
		n, err := s.c.rdb.Exists(ctx, s.c.key(sessionFamily, sid)).Result()
		s.c.observe(ctx, err)
		if err == nil {
			if n == 1 {
				return true, nil
			}
			_, ok := s.localSession(sid, s.now().UTC())
			return ok, nil
		}
	}
	if s.c != nil {
		return true, nil // Redis down: fail open, see the type's doc
	}
	_, ok := s.localSession(sid, s.now().UTC())
	return ok, nil
}

// Middleware refuses, with 401 problem+json "unauthorized", a request whose
// principal (auth.PrincipalFrom: run it after authentication) carries a
// session that is not active. Tokens without a session pass.
func (s *Sessions) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := auth.PrincipalFrom(r.Context()); ok && p.SessionID != "" {
			active, err := s.Active(r.Context(), p.SessionID)
			if err != nil || !active {
				writeUnauthorized(w, r, "the session was revoked or has expired")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func writeUnauthorized(w http.ResponseWriter, r *http.Request, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "urn:taskqueue:problem:unauthorized", "title": "Unauthorized", "status": http.StatusUnauthorized,
		"detail": detail, "instance": r.URL.Path, "requestId": w.Header().Get("X-Request-Id"),
	})
}

// MintFunc mints an access token for a session: auth.Tokens must write the
// session ID into the "sid" claim.
type MintFunc func(player string, role auth.Role, sessionID string) (token string, expiresAt time.Time, err error)

// tokenResponse is the body of refresh (and of a login that creates a
// session), as POST /api/auth/dev-token answers.
type tokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// RefreshHandler serves POST /api/auth/refresh behind authentication: the
// caller's token must carry an active session; the answer is a new token
// of the same session, whose TTL restarts.
func (s *Sessions) RefreshHandler(mint MintFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.PrincipalFrom(r.Context())
		if !ok || p.SessionID == "" {
			writeUnauthorized(w, r, "the token has no session to refresh")
			return
		}
		sess, err := s.Refresh(r.Context(), p.SessionID)
		if err != nil {
			writeUnauthorized(w, r, "the session was revoked or has expired")
			return
		}
		tok, exp, err := mint(sess.PlayerID, sess.Role, sess.ID)
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(tokenResponse{Token: tok, ExpiresAt: exp})
	}
}

// LogoutHandler serves POST /api/auth/logout behind authentication: it
// revokes the caller's session (204), so every token of it stops working
// at once, REST and WebSocket.
func (s *Sessions) LogoutHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.PrincipalFrom(r.Context())
		if !ok || p.SessionID == "" {
			writeUnauthorized(w, r, "the token has no session to end")
			return
		}
		_ = s.Revoke(r.Context(), p.SessionID) // revoked here even when Redis is down
		w.WriteHeader(http.StatusNoContent)
	}
}

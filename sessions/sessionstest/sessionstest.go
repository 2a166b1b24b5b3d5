// Package sessionstest is the contract of the sessions: one suite that
// every backend runs unchanged (in-process, the SQL store on SQLite and
// PostgreSQL, Redis, Redis Cluster), the way eventstore/storetest is the
// event store's.
package sessionstest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/sessions"
)

// Backend is one backend of the sessions, fresh for one test.
type Backend struct {
	// Instance returns the sessions of one instance of the service on the
	// backend: a new instance at each call where the backend is shared
	// between instances (Redis, the database), the only one otherwise.
	Instance func() *sessions.Sessions
	// Age makes d pass for every session of the backend (it moves the
	// instances' clock, or the backend's expiries).
	Age func(d time.Duration)
}

// Setup returns a fresh backend for t; what it opens is closed when t
// ends.
type Setup func(t *testing.T) Backend

// Run runs the suite against setup.
func Run(t *testing.T, setup Setup) {
	for _, tc := range []struct {
		name string
		run  func(*testing.T, Backend)
	}{
		{"CreateRefreshRevoke", createRefreshRevoke},
		{"UnknownSessionIsRefused", unknownSessionIsRefused},
		{"CreateRefusesInvalidPlayerOrRole", createRefusesInvalid},
		{"ExpiresTTLAfterLastRefresh", expiresAfterLastRefresh},
		{"RevokePlayerRevokesTheirSessionsOnly", revokePlayer},
		{"OnRevokeHearsRevocationsHere", onRevokeHere},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, setup(t)) })
	}
}

func create(t *testing.T, s *sessions.Sessions, player string, role auth.Role) sessions.Session {
	t.Helper()
	sess, err := s.Create(context.Background(), player, role)
	if err != nil {
		t.Fatalf("create a session of %s: %v", player, err)
	}
	return sess
}

func active(t *testing.T, s *sessions.Sessions, sid string) bool {
	t.Helper()
	ok, err := s.Active(context.Background(), sid)
	if err != nil {
		t.Fatalf("active %s: %v", sid, err)
	}
	return ok
}

// A session created on one instance is active and refreshed on another;
// revoked on one, it is refused on both.
func createRefreshRevoke(t *testing.T, b Backend) {
	ctx := context.Background()
	x, y := b.Instance(), b.Instance()
	sess := create(t, x, "alice", auth.RolePlayer)
	if sess.ID == "" || sess.PlayerID != "alice" || sess.Role != auth.RolePlayer || !sess.CreatedAt.Equal(sess.RefreshedAt) {
		t.Fatalf("created %+v", sess)
	}
	if other := create(t, x, "alice", auth.RolePlayer); other.ID == sess.ID {
		t.Fatal("two sessions share one ID")
	}
	if !active(t, y, sess.ID) {
		t.Fatal("a new session is not active")
	}
	b.Age(time.Hour)
	got, err := y.Refresh(ctx, sess.ID)
	if err != nil || got.ID != sess.ID || got.PlayerID != "alice" || got.Role != auth.RolePlayer {
		t.Fatalf("refresh = %+v, %v", got, err)
	}
	if got.RefreshedAt.Before(sess.RefreshedAt) || !got.CreatedAt.Truncate(time.Millisecond).Equal(sess.CreatedAt.Truncate(time.Millisecond)) {
		t.Fatalf("refreshed: created %v refreshed %v, want created %v and refreshed since", got.CreatedAt, got.RefreshedAt, sess.CreatedAt)
	}

	if err := x.Revoke(ctx, sess.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	for name, s := range map[string]*sessions.Sessions{"the revoking instance": x, "another instance": y} {
		if active(t, s, sess.ID) {
			t.Fatalf("a revoked session is active on %s", name)
		}
		if _, err := s.Refresh(ctx, sess.ID); !errors.Is(err, sessions.ErrNoSession) {
			t.Fatalf("refresh of a revoked session on %s: %v, want ErrNoSession", name, err)
		}
	}
	if err := x.Revoke(ctx, sess.ID); err != nil {
		t.Fatalf("revoking a revoked session again: %v", err)
	}
}

func unknownSessionIsRefused(t *testing.T, b Backend) {
	s := b.Instance()
	if active(t, s, "never-created") {
		t.Fatal("an unknown session is active")
	}
	if _, err := s.Refresh(context.Background(), "never-created"); !errors.Is(err, sessions.ErrNoSession) {
		t.Fatalf("refresh of an unknown session: %v, want ErrNoSession", err)
	}
}

func createRefusesInvalid(t *testing.T, b Backend) {
	s := b.Instance()
	for _, c := range []struct {
		player string
		role   auth.Role
	}{{"", auth.RolePlayer}, {"alice bob", auth.RolePlayer}, {"alice", auth.Role("wizard")}} {
		if sess, err := s.Create(context.Background(), c.player, c.role); err == nil {
			t.Errorf("created a session of player %q, role %q: %+v", c.player, c.role, sess)
		}
	}
}

// A session lives TTL after its creation or its last refresh, then is
// refused and cannot be refreshed.
func expiresAfterLastRefresh(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Instance()
	kept := create(t, s, "alice", auth.RolePlayer)
	left := create(t, s, "bob", auth.RolePlayer)
	b.Age(sessions.TTL - time.Hour)
	if !active(t, s, kept.ID) || !active(t, s, left.ID) {
		t.Fatal("a session expired before its TTL")
	}
	if _, err := s.Refresh(ctx, kept.ID); err != nil {
		t.Fatalf("refresh before the TTL: %v", err)
	}
	b.Age(2 * time.Hour)
	if active(t, s, left.ID) {
		t.Fatal("a session never refreshed is active TTL + 1 h after its creation")
	}
	if _, err := s.Refresh(ctx, left.ID); !errors.Is(err, sessions.ErrNoSession) {
		t.Fatalf("refresh of an expired session: %v, want ErrNoSession", err)
	}
	if !active(t, s, kept.ID) {
		t.Fatal("a session refreshed 2 h ago expired: the TTL counts from the creation, not the last refresh")
	}
	b.Age(sessions.TTL - time.Hour)
	if active(t, s, kept.ID) {
		t.Fatal("a session is active TTL + 1 h after its last refresh")
	}
}

// RevokePlayer revokes every session of the player, wherever it was
// created, counts them, and leaves the other players' alone.
func revokePlayer(t *testing.T, b Backend) {
	x, y := b.Instance(), b.Instance()
	alice := []sessions.Session{create(t, x, "alice", auth.RolePlayer), create(t, y, "alice", auth.RoleAdmin)}
	bob := create(t, x, "bob", auth.RolePlayer)
	n, err := x.RevokePlayer(context.Background(), "alice")
	if err != nil {
		t.Fatalf("revoke alice's sessions: %v", err)
	}
	if n != len(alice) {
		t.Fatalf("revoked %d of alice's sessions, want %d", n, len(alice))
	}
	for _, sess := range alice {
		for _, s := range []*sessions.Sessions{x, y} {
			if active(t, s, sess.ID) {
				t.Fatalf("alice's session %s is active after RevokePlayer", sess.ID)
			}
		}
	}
	if !active(t, y, bob.ID) {
		t.Fatal("RevokePlayer of alice revoked bob's session")
	}
	if n, err := x.RevokePlayer(context.Background(), "alice"); err != nil || n != 0 {
		t.Fatalf("revoking alice's sessions again: %d, %v; want 0", n, err)
	}
}

// The OnRevoke callbacks of the instance that revokes hear every
// revocation (the hub closes the session's sockets there).
func onRevokeHere(t *testing.T, b Backend) {
	s := b.Instance()
	var (
		mu    sync.Mutex
		heard []string
	)
	s.OnRevoke(func(sid string) { mu.Lock(); heard = append(heard, sid); mu.Unlock() })
	one, two := create(t, s, "alice", auth.RolePlayer), create(t, s, "bob", auth.RolePlayer)
	for _, sess := range []sessions.Session{one, two} {
		if err := s.Revoke(context.Background(), sess.ID); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(heard, one.ID) || !slices.Contains(heard, two.ID) {
		t.Fatalf("OnRevoke heard %v, want %s and %s", heard, one.ID, two.ID)
	}
}

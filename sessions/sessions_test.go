package sessions_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/internal/redistest"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/sessions"
	"github.com/taskqueue/taskqueue/sessions/sessionstest"
	"github.com/taskqueue/taskqueue/sessions/sqlstore"
)

// clock is the time of one backend's instances, moved by Age.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestInProcess(t *testing.T) {
	sessionstest.Run(t, func(t *testing.T) sessionstest.Backend {
		c := newClock()
		s := sessions.New(nil)
		sessions.SetClock(s, c.now)
		return sessionstest.Backend{Instance: func() *sessions.Sessions { return s }, Age: c.add}
	})
}

// durable is the sessions' backend on a SQL store of db.
func durable(db func(t *testing.T) projections.DB) sessionstest.Setup {
	return func(t *testing.T) sessionstest.Backend {
		c := newClock()
		store := sqlstore.New(db(t), sessions.TTL)
		return sessionstest.Backend{
			Instance: func() *sessions.Sessions {
				s := sessions.NewDurable(store)
				sessions.SetClock(s, c.now)
				return s
			},
			Age: c.add,
		}
	}
}

func TestSQLite(t *testing.T) {
	sessionstest.Run(t, durable(func(t *testing.T) projections.DB {
		return projections.NewSQLiteStoreDB(teststore.SQLite(t, ""))
	}))
}

func TestPostgres(t *testing.T) {
	sessionstest.Run(t, durable(func(t *testing.T) projections.DB {
		_, pool := teststore.Postgres(t, "", 2)
		return projections.NewPostgresDB(pool)
	}))
}

func TestRedis(t *testing.T) {
	sessionstest.Run(t, func(t *testing.T) sessionstest.Backend { return sessionstest.Redis(t, redistest.Shared(t)) })
}

// Sessions are created, refreshed, and revoked everywhere at once: the
// other instance's callbacks hear of it and its Active answers false.
func TestRedisRevokesEverywhere(t *testing.T) {
	srv := redistest.Shared(t)
	a := sessions.New(srv.Open(t, nil))
	defer a.Close()
	b := sessions.New(srv.Open(t, nil))
	defer b.Close()
	heard := make(chan string, 1)
	b.OnRevoke(func(sid string) { heard <- sid })
	ctx := context.Background()
	sess, err := a.Create(ctx, "alice", auth.RolePlayer)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Active(ctx, sess.ID); !ok || err != nil {
		t.Fatalf("active on b: %v, %v", ok, err)
	}
	// b subscribes asynchronously: revoke until it hears (a revocation is
	// idempotent).
	var sid string
	testenv.WaitFor(t, "b to hear the revocation", func() bool {
		if err := a.Revoke(ctx, sess.ID); err != nil {
			t.Fatal(err)
		}
		select {
		case sid = <-heard:
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	if sid != sess.ID {
		t.Fatalf("b heard %q, want %q", sid, sess.ID)
	}
	if ok, _ := b.Active(ctx, sess.ID); ok {
		t.Fatal("revoked session still active on b")
	}
}

// Redis stops mid-run: a revocation is refused (sent again later) but holds
// here, other sessions fail open, and the outage is logged once.
func TestRedisDownAndBack(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	log := &testenv.SyncBuffer{}
	c := redistest.Server{URL: srv.URL()}.OpenUp(t, log)
	s := sessions.New(c)
	defer s.Close()
	ctx := context.Background()
	sess, _ := s.Create(ctx, "alice", auth.RolePlayer)
	revoked, _ := s.Create(ctx, "alice", auth.RolePlayer)

	srv.Stop()
	if err := s.Revoke(ctx, revoked.ID); err == nil {
		t.Fatal("revoke with Redis down reported no error")
	}
	if ok, _ := s.Active(ctx, revoked.ID); ok {
		t.Fatal("a session revoked here during the outage is active")
	}
	if ok, _ := s.Active(ctx, sess.ID); !ok {
		t.Fatal("sessions fail open during an outage, but the session is refused")
	}
	if _, err := s.Refresh(ctx, sess.ID); !errors.Is(err, faults.ErrUnavailable) {
		t.Fatalf("refresh of a session in Redis with Redis down: %v, want ErrUnavailable", err)
	}
	if n := strings.Count(log.String(), "redis is down"); n != 1 {
		t.Fatalf("the outage was logged %d times, want once", n)
	}

	srv.Start()
	testenv.WaitFor(t, "the client to notice Redis is back", c.Up)
	// This Redis kept nothing: the sessions are in it again from now on.
	again, err := s.Create(ctx, "alice", auth.RolePlayer)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Redis().Exists(ctx, "session:"+again.ID).Result(); n != 1 {
		t.Fatal("a session created after Redis came back is not in Redis")
	}
	if err := s.Revoke(ctx, revoked.ID); err != nil {
		t.Fatalf("revoke sent again once Redis is back: %v", err)
	}
	if ok, _ := s.Active(ctx, revoked.ID); ok {
		t.Fatal("a revoked session is active after Redis came back")
	}
}

package redisx_test

import (
	"context"
	"fmt"
	"log/slog"
	neturl "net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/redisx"
)

// goneLog records the players a sweep handed to Gone.
type goneLog struct {
	mu      sync.Mutex
	players []string
}

func (g *goneLog) gone(_ context.Context, player string, _ time.Time) {
	g.mu.Lock()
	g.players = append(g.players, player)
	g.mu.Unlock()
}

func (g *goneLog) snapshot() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Sorted(slices.Values(g.players))
}

func newPresence(t *testing.T, c *redisx.Client, cfg redisx.PresenceConfig) *redisx.Presence {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := redisx.NewPresence(c, cfg)
	t.Cleanup(p.Close)
	return p
}

// The player is offline only when the last instance holding them leaves,
// whichever it is; and of two instances leaving at the same moment, exactly
// one hears "last".
func TestPresenceLastInstanceDecides(t *testing.T) {
	ca, prefix := sharedWithPrefix(t)
	url, _ := redisAt(t)
	cb := open(t, url, prefix, nil)
	a := newPresence(t, ca, redisx.PresenceConfig{})
	b := newPresence(t, cb, redisx.PresenceConfig{})
	ctx := context.Background()

	must(t, a.Join(ctx, "alice"))
	must(t, b.Join(ctx, "alice"))
	if a.Leave(ctx, "alice") {
		t.Fatal("A's leave reported alice offline although B holds her")
	}
	if !b.Leave(ctx, "alice") {
		t.Fatal("B's leave, the last, did not report alice offline")
	}
	must(t, a.Join(ctx, "alice"))
	if !a.Leave(ctx, "alice") {
		t.Fatal("a single instance's leave did not report alice offline")
	}

	for i := range 50 {
		player := fmt.Sprintf("p%d", i)
		must(t, a.Join(ctx, player))
		must(t, b.Join(ctx, player))
		var wg sync.WaitGroup
		var lastA, lastB bool
		wg.Add(2)
		go func() { defer wg.Done(); lastA = a.Leave(ctx, player) }()
		go func() { defer wg.Done(); lastB = b.Leave(ctx, player) }()
		wg.Wait()
		if lastA == lastB {
			t.Fatalf("%s: simultaneous leaves answered last=%v and %v, want exactly one", player, lastA, lastB)
		}
	}
	if n, err := ca.Redis().Exists(ctx, presenceKey(ca, prefix, "presence:alice"), presenceKey(ca, prefix, "presence:p0")).Result(); err != nil || n != 0 {
		t.Fatalf("player keys left behind: %d %v", n, err)
	}
}

// An instance that stops heartbeating (killed) does not keep its players
// online: once its TTL passed, a live instance's sweep hands its players
// that nobody else holds to Gone, once, and another instance's leave no
// longer counts it.
func TestPresenceDeadInstanceIsSwept(t *testing.T) {
	ca, prefix := sharedWithPrefix(t)
	url, _ := redisAt(t)
	cb, cc := open(t, url, prefix, nil), open(t, url, prefix, nil)
	short := redisx.PresenceConfig{TTL: 400 * time.Millisecond, Heartbeat: 50 * time.Millisecond}
	short.Logger = slog.New(slog.DiscardHandler)
	dead := redisx.NewPresence(ca, short)
	var gone goneLog
	short.Gone = gone.gone
	b := newPresence(t, cb, short)
	c := newPresence(t, cc, short) // a second sweeper: a player is still handed over once
	ctx := context.Background()

	must(t, dead.Join(ctx, "alone"))
	must(t, dead.Join(ctx, "shared"))
	must(t, b.Join(ctx, "shared"))
	must(t, c.Join(ctx, "other"))
	dead.Close() // its heartbeat stops, as if killed

	waitFor(t, "the dead instance's lone player to be swept", func() bool { return len(gone.snapshot()) > 0 })
	waitFor(t, "the dead instance to be forgotten", func() bool {
		return ca.Redis().ZScore(ctx, presenceKey(ca, prefix, "presence-instances"), dead.Instance()).Err() != nil
	})
	if got := gone.snapshot(); !slices.Equal(got, []string{"alone"}) {
		t.Fatalf("swept %v, want [alone] once", got)
	}
	if !b.Leave(ctx, "shared") {
		t.Fatal("the dead instance still holds the shared player")
	}
	if !c.Leave(ctx, "other") {
		t.Fatal("the last live instance's leave is not the last")
	}
}

// While Redis is unreachable, presence is this instance's own view (a
// leave is the last) with a warning; when Redis answers again, what this
// instance holds is written back: players it left meanwhile are removed,
// players it joined meanwhile are added, also after Redis lost its data.
func TestPresenceRedisDownFallsBackAndReconciles(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		raw, prefix := sharedWithPrefix(t)
		url, _ := testenv.Redis(t)
		u, err := neturl.Parse(url)
		if err != nil {
			t.Fatal(err)
		}
		proxy := testenv.StartTCPProxy(t, u.Host)
		u.Host = proxy.Addr()
		log := &syncBuffer{}
		c := open(t, u.String(), prefix, log)
		waitFor(t, "redis up", c.Up)
		p := newPresence(t, c, redisx.PresenceConfig{Heartbeat: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(log, nil))})
		other := newPresence(t, raw, redisx.PresenceConfig{})
		ctx := context.Background()
		must(t, p.Join(ctx, "left"))
		must(t, other.Join(ctx, "left"))

		proxy.Stop()
		if !p.Leave(ctx, "left") {
			t.Fatal("with Redis down a leave is not the last")
		}
		must(t, p.Join(ctx, "joined"))
		if log.count("decided by this instance alone") != 1 {
			t.Fatalf("want one outage warning, log:\n%s", log.String())
		}

		proxy.Start(t)
		waitFor(t, "the instance to be written back", func() bool {
			in, _ := raw.Redis().SMembers(ctx, prefix+"presence-instance:"+p.Instance()).Result()
			return slices.Equal(in, []string{"joined"})
		})
		if !other.Leave(ctx, "left") {
			t.Fatal("the instance that left during the outage still holds the player")
		}
	})
	t.Run("restarted", func(t *testing.T) {
		srv := testenv.StartRedisServer(t)
		log := &syncBuffer{}
		c := open(t, srv.URL(), "", log)
		waitFor(t, "redis up", c.Up)
		p := newPresence(t, c, redisx.PresenceConfig{Heartbeat: 20 * time.Millisecond})
		ctx := context.Background()
		must(t, p.Join(ctx, "alice"))
		srv.Stop() // keeps nothing: comes back empty
		waitFor(t, "redis down", func() bool { return !c.Up() })
		srv.Start()
		waitFor(t, "alice to be written back", func() bool {
			ok, _ := c.Redis().SIsMember(ctx, "presence:alice", p.Instance()).Result()
			return ok
		})
		if !p.Leave(ctx, "alice") {
			t.Fatal("alice's last leave after the restart is not the last")
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

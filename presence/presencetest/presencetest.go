// Package presencetest is the contract of the fleet's presence: one suite
// that it passes on one Redis server and on a Redis Cluster, the way
// eventstore/storetest is the event store's.
package presencetest

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/internal/redistest"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/presence"
	"github.com/taskqueue/taskqueue/redisx"
)

// Backend is where the instances of one test meet.
type Backend struct {
	// Instance starts the presence of another instance of the service
	// (a client of its own); it is closed when the test ends unless the
	// test closed it.
	Instance func(cfg presence.Config) *presence.Presence
	// Redis is a client of the backend, and Key the name of a presence key
	// there (after the prefix and, on a cluster, the hash tag).
	Redis *redisx.Client
	Key   func(key string) string
}

// Setup returns a fresh backend for t.
type Setup func(t *testing.T) Backend

// Redis is the backend on srv (one server or a cluster).
func Redis(t *testing.T, srv redistest.Server) Backend {
	raw := srv.OpenUp(t, nil)
	return Backend{
		Instance: func(cfg presence.Config) *presence.Presence {
			if cfg.Logger == nil {
				cfg.Logger = slog.New(slog.DiscardHandler)
			}
			p := presence.New(srv.OpenUp(t, nil), cfg)
			t.Cleanup(p.Close)
			return p
		},
		Redis: raw,
		Key: func(key string) string {
			if raw.Cluster() {
				return srv.Prefix + "{presence}:" + key
			}
			return srv.Prefix + key
		},
	}
}

// Run runs the suite against setup.
func Run(t *testing.T, setup Setup) {
	for _, tc := range []struct {
		name string
		run  func(*testing.T, Backend)
	}{
		{"LastInstanceDecides", lastInstanceDecides},
		{"DeadInstanceIsSwept", deadInstanceIsSwept},
		{"ForgetErasesThePlayerEverywhere", forgetErasesThePlayerEverywhere},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, setup(t)) })
	}
}

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

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The player is offline only when the last instance holding them leaves,
// whichever it is; and of two instances leaving at the same moment, exactly
// one hears "last".
func lastInstanceDecides(t *testing.T, be Backend) {
	a := be.Instance(presence.Config{})
	b := be.Instance(presence.Config{})
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
	if n, err := be.Redis.Redis().Exists(ctx, be.Key("presence:alice"), be.Key("presence:p0")).Result(); err != nil || n != 0 {
		t.Fatalf("player keys left behind: %d %v", n, err)
	}
}

// An instance that stops heartbeating (killed) does not keep its players
// online: once its TTL passed, a live instance's sweep hands its players
// that nobody else holds to Gone, once, and another instance's leave no
// longer counts it.
func deadInstanceIsSwept(t *testing.T, be Backend) {
	short := presence.Config{TTL: 400 * time.Millisecond, Heartbeat: 50 * time.Millisecond}
	dead := be.Instance(short)
	var gone goneLog
	short.Gone = gone.gone
	b := be.Instance(short)
	c := be.Instance(short) // a second sweeper: a player is still handed over once
	ctx := context.Background()

	must(t, dead.Join(ctx, "alone"))
	must(t, dead.Join(ctx, "shared"))
	must(t, b.Join(ctx, "shared"))
	must(t, c.Join(ctx, "other"))
	dead.Close() // its heartbeat stops, as if killed

	testenv.WaitFor(t, "the dead instance's lone player to be swept", func() bool { return len(gone.snapshot()) > 0 })
	testenv.WaitFor(t, "the dead instance to be forgotten", func() bool {
		return be.Redis.Redis().ZScore(ctx, be.Key("presence-instances"), dead.Instance()).Err() != nil
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

// Forgetting a player erases them from every instance's presence, and
// only them: their own set and their place in each instance's set. The
// other instance is written into Redis as another process would have (an
// instance of this process that still held the player would, rightly, put
// them back at its next reconcile).
func forgetErasesThePlayerEverywhere(t *testing.T, be Backend) {
	a := be.Instance(presence.Config{})
	ctx := context.Background()
	must(t, a.Join(ctx, "alice"))
	must(t, a.Join(ctx, "bob"))
	rdb := be.Redis.Redis()
	const other = "other-instance"
	must(t, rdb.ZAdd(ctx, be.Key("presence-instances"), redis.Z{Score: float64(time.Now().Add(time.Hour).UnixMilli()), Member: other}).Err())
	must(t, rdb.SAdd(ctx, be.Key("presence-instance:"+other), "alice", "bob").Err())
	for _, p := range []string{"alice", "bob"} {
		must(t, rdb.SAdd(ctx, be.Key("presence:"+p), other).Err())
	}

	must(t, a.Forget(ctx, "alice"))
	if n, err := rdb.Exists(ctx, be.Key("presence:alice")).Result(); err != nil || n != 0 {
		t.Fatalf("alice's presence set after the forget: exists %d, %v", n, err)
	}
	for _, id := range []string{a.Instance(), other} {
		members, err := rdb.SMembers(ctx, be.Key("presence-instance:"+id)).Result()
		must(t, err)
		if slices.Contains(members, "alice") || !slices.Contains(members, "bob") {
			t.Fatalf("instance %s holds %v after forgetting alice; want bob and not alice", id, members)
		}
	}
	if n, err := rdb.SCard(ctx, be.Key("presence:bob")).Result(); err != nil || n != 2 {
		t.Fatalf("bob's presence after forgetting alice: %d instances, %v; want 2", n, err)
	}
}

package realtime_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/realtime"
	"github.com/taskqueue/taskqueue/redisx"
	"github.com/taskqueue/taskqueue/web/auth"
)

// fleetPresence is app's presence adapter without the publisher: the
// shared count decides, the test records what would be published.
type fleetPresence struct {
	shared *redisx.Presence
	log    *fleetLog
	name   string
}

type fleetLog struct {
	mu        sync.Mutex
	decided   []string // instance:player of every PlayerOffline
	published []string // players announced offline
}

func (f *fleetLog) snapshot() (decided, published []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.decided), slices.Clone(f.published)
}

func (p fleetPresence) PlayerOnline(ctx context.Context, player domain.PlayerID, _ time.Time) error {
	return p.shared.Join(ctx, string(player))
}

func (p fleetPresence) PlayerOffline(ctx context.Context, player domain.PlayerID, _ time.Time, _ eventstore.Position) error {
	last := p.shared.Leave(ctx, string(player))
	p.log.mu.Lock()
	defer p.log.mu.Unlock()
	p.log.decided = append(p.log.decided, p.name+":"+string(player))
	if last {
		p.log.published = append(p.log.published, string(player))
	}
	return nil
}

// With two instances sharing Redis, a player whose socket on A closes
// while they are connected to B is not reported offline; closing their
// last socket anywhere reports them offline once, after the grace period.
func TestPresenceIsDecidedAcrossInstances(t *testing.T) {
	store := openSQLite(t)
	tokens := newTokens(t)
	url, prefix := testenv.Redis(t)
	var log fleetLog
	var servers []*server
	var shared []*redisx.Presence
	var raw *redisx.Client
	for _, name := range []string{"A", "B"} {
		c, err := redisx.Open(redisx.Config{URL: url, Prefix: prefix, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if raw == nil {
			raw = c
			t.Cleanup(func() {
				ctx := context.Background()
				iter := c.Redis().Scan(ctx, 0, prefix+"*", 1000).Iterator()
				for iter.Next(ctx) {
					c.Redis().Del(ctx, iter.Val())
				}
			})
		}
		p := redisx.NewPresence(c, redisx.PresenceConfig{Logger: slog.New(slog.DiscardHandler)})
		t.Cleanup(p.Close)
		shared = append(shared, p)
		servers = append(servers, startHub(t, realtime.Config{
			Store: store, Tokens: tokens, OfflineGrace: 200 * time.Millisecond,
			Presence: fleetPresence{shared: p, log: &log, name: name},
		}))
	}
	ctx := context.Background()
	holds := func(i int) func() bool {
		return func() bool {
			ok, _ := raw.Redis().SIsMember(ctx, prefix+"presence:alice", shared[i].Instance()).Result()
			return ok
		}
	}
	tok := token(t, tokens, "alice", auth.RolePlayer)
	a := mustDial(t, servers[0], tok)
	a.subscribe("alice", "")
	testenv.WaitFor(t, "A to hold alice", holds(0))
	b := mustDial(t, servers[1], tok)
	b.subscribe("alice", "")
	testenv.WaitFor(t, "B to hold alice", holds(1))

	a.conn.Close(websocket.StatusNormalClosure, "")
	testenv.WaitFor(t, "A's grace to pass", func() bool { d, _ := log.snapshot(); return len(d) == 1 })
	if d, p := log.snapshot(); d[0] != "A:alice" || len(p) != 0 {
		t.Fatalf("A left alice: decided %v, published %v; want no player.offline while B holds her", d, p)
	}
	if !holds(1)() || holds(0)() {
		t.Fatal("after A's grace, Redis should hold alice on B only")
	}

	b.conn.Close(websocket.StatusNormalClosure, "")
	testenv.WaitFor(t, "B's grace to pass", func() bool { d, _ := log.snapshot(); return len(d) == 2 })
	if d, p := log.snapshot(); d[1] != "B:alice" || !slices.Equal(p, []string{"alice"}) {
		t.Fatalf("B left alice: decided %v, published %v; want alice offline once", d, p)
	}

	// Back on B, then over to A: B's socket closes after A's opened
	// (within B's grace B still holds her, so a reconnect to A during the
	// grace is the same as this overlap): still online.
	c := mustDial(t, servers[1], tok)
	c.subscribe("alice", "")
	testenv.WaitFor(t, "B to hold alice again", holds(1))
	d := mustDial(t, servers[0], tok)
	d.subscribe("alice", "")
	testenv.WaitFor(t, "A to hold alice again", holds(0))
	c.conn.Close(websocket.StatusNormalClosure, "")
	testenv.WaitFor(t, "B's grace to pass again", func() bool { d, _ := log.snapshot(); return len(d) == 3 })
	if _, p := log.snapshot(); len(p) != 1 {
		t.Fatalf("alice moved from B to A and was announced offline: %v", p)
	}
	d.conn.Close(websocket.StatusNormalClosure, "")
	testenv.WaitFor(t, "A's grace to pass again", func() bool { d, _ := log.snapshot(); return len(d) == 4 })
	if _, p := log.snapshot(); !slices.Equal(p, []string{"alice", "alice"}) {
		t.Fatalf("published %v, want alice offline twice (two offline transitions)", p)
	}
}

// blockingPresence holds PlayerOffline until released.
type blockingPresence struct {
	presenceLog
	offlineStarted chan struct{}
	release        chan struct{}
	releaseOnce    sync.Once
}

func (p *blockingPresence) releaseOffline() { p.releaseOnce.Do(func() { close(p.release) }) }

func (p *blockingPresence) PlayerOffline(ctx context.Context, player domain.PlayerID, at time.Time, last eventstore.Position) error {
	close(p.offlineStarted)
	<-p.release
	return p.presenceLog.PlayerOffline(ctx, player, at, last)
}

// A player's presence calls reach Presence in order: an online that comes
// while the previous offline is still running waits for it (a shared
// presence would otherwise remove a player who just reconnected).
func TestPresenceCallsOfAPlayerAreOrdered(t *testing.T) {
	store := openSQLite(t)
	pl := &blockingPresence{offlineStarted: make(chan struct{}), release: make(chan struct{})}
	s := startHub(t, realtime.Config{Store: store, Presence: pl, OfflineGrace: 10 * time.Millisecond})
	t.Cleanup(pl.releaseOffline) // before the hub closes, which waits for the call
	tok := token(t, s.tokens, "alice", auth.RolePlayer)
	a := mustDial(t, s, tok)
	a.subscribe("alice", "")
	a.mustRead()
	testenv.WaitFor(t, "online", func() bool { return len(pl.snapshot()) == 1 })
	a.conn.Close(websocket.StatusNormalClosure, "")
	<-pl.offlineStarted

	b := mustDial(t, s, tok)
	b.subscribe("alice", "")
	b.mustRead()
	testenv.WaitFor(t, "the new socket to count", func() bool { return s.hub.Stats().Connections == 1 })
	if got := pl.snapshot(); len(got) != 1 {
		t.Fatalf("presence calls %v while the offline was running, want the online to wait", got)
	}
	pl.releaseOffline()
	testenv.WaitFor(t, "the second online", func() bool { return len(pl.snapshot()) == 3 })
	if got := pl.snapshot(); !strings.HasPrefix(got[1], "offline:alice@") || got[2] != "online:alice" {
		t.Fatalf("presence calls %v, want online, offline, online", got)
	}
}

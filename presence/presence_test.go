package presence_test

import (
	"context"
	"log/slog"
	neturl "net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/internal/redistest"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/presence"
	"github.com/taskqueue/taskqueue/presence/presencetest"
	"github.com/taskqueue/taskqueue/redisx"
)

func TestRedis(t *testing.T) {
	presencetest.Run(t, func(t *testing.T) presencetest.Backend { return presencetest.Redis(t, redistest.Shared(t)) })
}

func newPresence(t *testing.T, c *redisx.Client, cfg presence.Config) *presence.Presence {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := presence.New(c, cfg)
	t.Cleanup(p.Close)
	return p
}

// While Redis is unreachable, presence is this instance's own view (a
// leave is the last) with a warning; when Redis answers again, what this
// instance holds is written back: players it left meanwhile are removed,
// players it joined meanwhile are added, also after Redis lost its data.
func TestPresenceRedisDownFallsBackAndReconciles(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		srv := redistest.Shared(t)
		raw, prefix := srv.OpenUp(t, nil), srv.Prefix
		u, err := neturl.Parse(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		proxy := testenv.StartTCPProxy(t, u.Host)
		u.Host = proxy.Addr()
		log := &testenv.SyncBuffer{}
		c := redistest.Server{URL: u.String(), Prefix: prefix}.OpenUp(t, log)
		p := newPresence(t, c, presence.Config{Heartbeat: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(log, nil))})
		other := newPresence(t, raw, presence.Config{})
		ctx := context.Background()
		must(t, p.Join(ctx, "left"))
		must(t, other.Join(ctx, "left"))

		proxy.Stop()
		if !p.Leave(ctx, "left") {
			t.Fatal("with Redis down a leave is not the last")
		}
		must(t, p.Join(ctx, "joined"))
		if strings.Count(log.String(), "decided by this instance alone") != 1 {
			t.Fatalf("want one outage warning, log:\n%s", log.String())
		}

		proxy.Start(t)
		testenv.WaitFor(t, "the instance to be written back", func() bool {
			in, _ := raw.Redis().SMembers(ctx, prefix+"presence-instance:"+p.Instance()).Result()
			return slices.Equal(in, []string{"joined"})
		})
		if !other.Leave(ctx, "left") {
			t.Fatal("the instance that left during the outage still holds the player")
		}
	})
	t.Run("partitioned", func(t *testing.T) {
		// Redis holds the connections and answers nothing: the
		// heartbeat's calls run out of their own deadline, which is
		// Redis's failure, not a cancellation of the caller's.
		srv := redistest.Shared(t)
		u, err := neturl.Parse(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		proxy := testenv.StartTCPProxy(t, u.Host)
		u.Host = proxy.Addr()
		c := redistest.Server{URL: u.String(), Prefix: srv.Prefix}.OpenUp(t, nil)
		p := newPresence(t, c, presence.Config{Heartbeat: 20 * time.Millisecond})
		ctx := context.Background()
		must(t, p.Join(ctx, "alice"))
		proxy.Partition()
		testenv.WaitFor(t, "redis down", func() bool { return !c.Up() })
		proxy.Heal()
		testenv.WaitFor(t, "redis up", c.Up)
	})
	t.Run("restarted", func(t *testing.T) {
		srv := testenv.StartRedisServer(t)
		c := redistest.Server{URL: srv.URL()}.OpenUp(t, nil)
		p := newPresence(t, c, presence.Config{Heartbeat: 20 * time.Millisecond})
		ctx := context.Background()
		must(t, p.Join(ctx, "alice"))
		srv.Stop() // keeps nothing: comes back empty
		testenv.WaitFor(t, "redis down", func() bool { return !c.Up() })
		srv.Start()
		testenv.WaitFor(t, "alice to be written back", func() bool {
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

package realtime_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/realtime"
	"github.com/taskqueue/taskqueue/redisx"
	loginsessions "github.com/taskqueue/taskqueue/sessions"
	"github.com/taskqueue/taskqueue/wakeups"
)

// instance is one server process: its own store handle (pool, listener) on
// the shared database, its own hub, maybe its own Redis client.
type instance struct {
	store eventstore.Store
	srv   *server
}

// Changes made through instance A reach a client of instance B, in order
// and complete, with and without Redis wake-ups, on PostgreSQL and on one
// SQLite file shared by two stores. With Redis, a session revoked on A
// closes its socket on B. On PostgreSQL, the same with a Redis Cluster of
// the test's own.
func TestTwoInstancesDeliverCrossInstance(t *testing.T) {
	for _, backend := range []string{"postgres", "sqlite"} {
		for _, redisKind := range []string{"", "redis", "rediscluster"} {
			if redisKind == "rediscluster" && backend != "postgres" {
				continue
			}
			withRedis := redisKind != ""
			name := backend
			if withRedis {
				name += "+" + redisKind
			}
			t.Run(name, func(t *testing.T) {
				var open func() eventstore.Store
				switch backend {
				case "postgres":
					url := postgresURL(t)
					open = func() eventstore.Store { return openPostgres(t, url) }
				default:
					path := filepath.Join(t.TempDir(), "events.db")
					open = func() eventstore.Store {
						s, err := sqlite.Open(context.Background(), path)
						if err != nil {
							t.Fatal(err)
						}
						t.Cleanup(func() { _ = s.Close() })
						return s
					}
				}
				tokens := newTokens(t)
				var redisURL, prefix string
				switch redisKind {
				case "redis":
					redisURL, prefix = testenv.Redis(t)
				case "rediscluster":
					redisURL, prefix = testenv.StartRedisCluster(t).URL(), "test:"
				}
				var insts []instance
				var sessList []*loginsessions.Sessions
				for i := 0; i < 2; i++ {
					store := open()
					cfg := realtime.Config{Store: store, Tokens: tokens}
					if withRedis {
						c, err := redisx.Open(redisx.Config{URL: redisURL, Prefix: prefix})
						if err != nil {
							t.Fatal(err)
						}
						t.Cleanup(func() { _ = c.Close() })
						w := wakeups.New(c)
						t.Cleanup(w.Close)
						sess := loginsessions.New(c)
						t.Cleanup(sess.Close)
						sessList = append(sessList, sess)
						cfg.Waker, cfg.Sessions = w, sess
					}
					srv := startHub(t, cfg)
					if withRedis {
						sessList[i].OnRevoke(srv.hub.RevokeSession)
					}
					insts = append(insts, instance{store: store, srv: srv})
				}
				a, b := insts[0], insts[1]
				h := newHandlers(t, a.store)
				tok := token(t, tokens, "alice", auth.RolePlayer)
				var sid string
				if withRedis {
					sess, err := sessList[0].Create(context.Background(), "alice", auth.RolePlayer)
					if err != nil {
						t.Fatal(err)
					}
					sid = sess.ID
					tok = sessionToken(t, "alice", sid)
				}
				c := mustDial(t, b.srv, tok)
				c.subscribe("alice", "")
				c.mustRead() // reset
				c.mustRead() // subscribed
				workload(context.Background(), t, h, []string{"alice", "bob"}, 80, 11)
				want := streamVersion(t, a.store, "alice")
				for v := int64(1); v <= want; v++ {
					m := c.mustRead()
					if m.Type != realtime.TypeEvent || m.Event.Version != v {
						t.Fatalf("instance B: got %s v%d, want event v%d", m.Type, eventVersion(m), v)
					}
				}
				if withRedis {
					if err := sessList[0].Revoke(context.Background(), sid); err != nil {
						t.Fatal(err)
					}
					if got := c.closeStatus(); got != realtime.CloseUnauthorized {
						t.Fatalf("socket on B closed with %d after the session was revoked on A, want %d", got, realtime.CloseUnauthorized)
					}
				}
			})
		}
	}
}

// A Redis restart in the middle of a stream loses nothing: what is sent
// comes from the store by position, and the wake-ups resume by themselves.
func TestRedisRestartLosesNothing(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	url := postgresURL(t)
	tokens := newTokens(t)
	var insts []instance
	for i := 0; i < 2; i++ {
		c, err := redisx.Open(redisx.Config{URL: srv.URL(), Timeout: 200 * time.Millisecond, HealthInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		w := wakeups.New(c)
		t.Cleanup(w.Close)
		store := openPostgres(t, url)
		insts = append(insts, instance{store: store, srv: startHub(t, realtime.Config{Store: store, Tokens: tokens, Waker: w})})
	}
	h := newHandlers(t, insts[0].store)
	c := mustDial(t, insts[1].srv, token(t, tokens, "alice", auth.RolePlayer))
	c.subscribe("alice", "")
	c.mustRead()
	c.mustRead()
	next := int64(1)
	readUpTo := func(want int64) {
		for ; next <= want; next++ {
			m := c.mustRead()
			if m.Type != realtime.TypeEvent || m.Event.Version != next {
				t.Fatalf("got %s v%d, want event v%d", m.Type, eventVersion(m), next)
			}
		}
	}
	workload(context.Background(), t, h, []string{"alice"}, 20, 1)
	readUpTo(streamVersion(t, insts[0].store, "alice"))
	srv.Stop()
	workload(context.Background(), t, h, []string{"alice"}, 20, 2)
	readUpTo(streamVersion(t, insts[0].store, "alice"))
	srv.Start()
	workload(context.Background(), t, h, []string{"alice"}, 20, 3)
	readUpTo(streamVersion(t, insts[0].store, "alice"))
}

// With the queue projection's checkpoint as the watermark, every message
// is sent only once the read model has applied its event: a REST read
// right after a message never sees an older queue.
func TestLiveDeliveryWaitsForTheReadModel(t *testing.T) {
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "events.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	runner, err := projections.NewRunner(projections.Config{
		Store: store, DB: projections.NewSQLiteStoreDB(store),
		Projections: []projections.Projection{projections.Queues{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = runner.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	watermark := realtime.PollingWatermark(func(ctx context.Context) (eventstore.Position, error) {
		st, err := runner.StatusOf(ctx, projections.QueuesName)
		return st.Position, err
	}, runner.Committed, 20*time.Millisecond)
	s := startHub(t, realtime.Config{Store: store, Watermark: watermark, MaxWatermarkWait: time.Minute})
	c := mustDial(t, s, token(t, s.tokens, "alice", auth.RolePlayer))
	c.subscribe("alice", "")
	c.mustRead()
	c.mustRead()
	h := newHandlers(t, store)
	workload(context.Background(), t, h, []string{"alice"}, 30, 5)
	want := streamVersion(t, store, "alice")
	for v := int64(1); v <= want; v++ {
		m := c.mustRead()
		if m.Type != realtime.TypeEvent || m.Event.Version != v {
			t.Fatalf("got %s v%d, want event v%d", m.Type, eventVersion(m), v)
		}
		var applied int64
		if err := store.ReadDB().QueryRow(`SELECT stream_version FROM queue_status WHERE player_id = ?`, "alice").Scan(&applied); err != nil {
			t.Fatalf("read the read model after v%d: %v", v, err)
		}
		if applied < v {
			t.Fatalf("message of v%d sent while the read model was at v%d", v, applied)
		}
	}
}

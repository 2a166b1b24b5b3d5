package realtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/taskqueue/taskqueue/api/asyncapi"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/realtime"
	"github.com/taskqueue/taskqueue/web/auth"
)

var testSecret = []byte(strings.Repeat("realtime-secret-", 3))

func openSQLite(t testing.TB) eventstore.Store {
	t.Helper()
	return teststore.SQLite(t, filepath.Join(t.TempDir(), "events.db"))
}

// postgresURL returns a migrated fresh schema.
func postgresURL(t testing.TB) string { return teststore.PostgresURL(t) }

// openPostgres opens a store of its own (its own pool and listener, as
// another process would) on url.
func openPostgres(t testing.TB, url string) eventstore.Store {
	t.Helper()
	s, _ := teststore.Postgres(t, url, 4)
	return s
}

func newTokens(t testing.TB) *auth.Tokens {
	t.Helper()
	tk, err := auth.NewTokens(auth.TokensConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func token(t testing.TB, tk *auth.Tokens, player string, role auth.Role) string {
	t.Helper()
	s, _, err := tk.Mint(player, role, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// steppingClock advances by step on every reading, so that repetitions
// fall due and the workload produces completions, level-ups and failures.
func steppingClock(step time.Duration) func() time.Time {
	var n atomic.Int64
	start := time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC)
	return func() time.Time { return start.Add(time.Duration(n.Add(1)) * step) }
}

func newHandlers(t testing.TB, store eventstore.Store) *command.Handlers {
	t.Helper()
	h, err := command.NewHandlers(store, command.Config{Clock: steppingClock(700 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// server is a hub behind a real HTTP server.
type server struct {
	hub    *realtime.Hub
	srv    *httptest.Server
	tokens *auth.Tokens
}

func startHub(t testing.TB, cfg realtime.Config) *server {
	t.Helper()
	if cfg.Tokens == nil {
		cfg.Tokens = newTokens(t)
	}
	if cfg.ReadTimeout == 0 {
		// A catch-up on PostgreSQL waits for the log's readable part to
		// reach what was committed; on the shared server other tests'
		// transactions may hold it back for longer than the default 5 s.
		cfg.ReadTimeout = time.Minute
	}
	hub, err := realtime.NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hub)
	t.Cleanup(func() {
		hub.Close()
		srv.Close()
	})
	return &server{hub: hub, srv: srv, tokens: cfg.Tokens.(*auth.Tokens)}
}

func (s *server) url() string { return "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/api/ws" }

// message is a server message as a client decodes it.
type message struct {
	Type     string `json:"type"`
	Position string `json:"position"`
	PlayerID string `json:"playerId"`
	Event    *struct {
		Type     string          `json:"type"`
		Version  int64           `json:"version"`
		Position string          `json:"position"`
		Data     json.RawMessage `json:"data"`
	} `json:"event"`
	Queue   json.RawMessage `json:"queue"`
	Problem *struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
	} `json:"problem"`
}

func (m message) queueVersion(t testing.TB) int64 {
	t.Helper()
	var v struct {
		Version int64 `json:"version"`
	}
	if err := json.Unmarshal(m.Queue, &v); err != nil {
		t.Fatalf("queue of %s message: %v", m.Type, err)
	}
	return v.Version
}

// client is one socket.
type client struct {
	t    testing.TB
	conn *websocket.Conn
}

// dial opens a socket with the token in ?access_token=.
func dial(t testing.TB, s *server, tok string, opts *websocket.DialOptions) (*client, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := s.url()
	if tok != "" {
		u += "?access_token=" + tok
	}
	conn, resp, err := websocket.Dial(ctx, u, opts)
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(1 << 20)
	return &client{t: t, conn: conn}, resp, nil
}

func mustDial(t testing.TB, s *server, tok string) *client {
	t.Helper()
	c, _, err := dial(t, s, tok, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.conn.CloseNow() })
	return c
}

func (c *client) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) subscribe(player, since string) {
	c.t.Helper()
	m := map[string]string{"type": "subscribe", "playerId": player}
	if since != "" {
		m["since"] = since
	}
	c.send(m)
}

// read returns the next message, or the error that ended the socket.
func (c *client) read(timeout time.Duration) (message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, b, err := c.conn.Read(ctx)
	if err != nil {
		return message{}, err
	}
	// Every message the server sends is one of the spec's
	// (api/asyncapi/asyncapi.yaml, ServerMessage).
	if err := asyncapi.Validate(asyncapi.ServerMessage, b); err != nil {
		c.t.Errorf("a server message breaks the AsyncAPI spec: %v", err)
	}
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return message{}, fmt.Errorf("decode %s: %w", b, err)
	}
	return m, nil
}

func (c *client) mustRead() message {
	c.t.Helper()
	m, err := c.read(90 * time.Second) // generous: other tests on the shared PostgreSQL may hold the safe prefix back
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

// closeStatus reads until the socket ends and returns its close status.
func (c *client) closeStatus() websocket.StatusCode {
	c.t.Helper()
	for {
		_, err := c.read(90 * time.Second)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				c.t.Fatalf("socket still open")
			}
			return websocket.CloseStatus(err)
		}
	}
}

// workload issues random commands for players until stop is closed or n
// commands were issued, and returns how many succeeded.
func workload(ctx context.Context, t testing.TB, h *command.Handlers, players []string, n int, seed uint64) int {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	tasks := map[string][]domain.TaskID{}
	ok := 0
	types := []string{"chop-wood", "saw-planks", "mine-copper"}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		p := players[rng.IntN(len(players))]
		req := command.Request{PlayerID: p, Actor: p}
		var err error
		switch r := rng.IntN(10); {
		case r < 5 || len(tasks[p]) == 0:
			var res command.EnqueueTaskResult
			res, err = h.EnqueueTask.Handle(ctx, command.EnqueueTask{Request: req, Type: types[rng.IntN(len(types))], Count: 1 + rng.IntN(3)})
			if err == nil {
				tasks[p] = append(tasks[p], res.Task.TaskID)
			}
		case r < 7:
			ids := tasks[p]
			k := rng.IntN(len(ids))
			_, err = h.RemoveTask.Handle(ctx, command.RemoveTask{Request: req, TaskID: string(ids[k])})
			tasks[p] = append(ids[:k:k], ids[k+1:]...)
		case r < 8:
			_, err = h.StopQueue.Handle(ctx, command.StopQueue{Request: req})
		default:
			_, err = h.StartQueue.Handle(ctx, command.StartQueue{Request: req})
		}
		if err == nil {
			ok++
		}
	}
	return ok
}

// streamVersion reads a player's queue version from the store.
func streamVersion(t testing.TB, store eventstore.Store, player string) int64 {
	t.Helper()
	v, err := store.StreamVersion(context.Background(), domain.PlayerID(player).Stream())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// normalized decodes a queue JSON without serverTime and state (which
// domain.QueueView, the command side's view, does not have), for
// comparisons.
func normalized(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode queue %s: %v", b, err)
	}
	delete(m, "serverTime")
	delete(m, "state")
	return m
}

var _ = sync.Mutex{}

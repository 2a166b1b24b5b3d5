package web_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/auth"
)

// TestWebSocketThroughTheRouter opens GET /api/ws through the whole
// middleware chain (request ID, access log, CORS, body limit: the socket
// must still be hijackable) and sees a REST command arrive as an event.
func TestWebSocketThroughTheRouter(t *testing.T) {
	c := newClient(t, apptest.SQLite(t))
	alice := c.token("alice", auth.RolePlayer)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(c.url, "http") + "/api/ws?access_token=" + alice
	conn, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatalf("dial /api/ws: %v", err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","playerId":"alice"}`)); err != nil {
		t.Fatal(err)
	}
	read := func() map[string]any {
		t.Helper()
		_, b, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("message is not JSON: %s", b)
		}
		return m
	}
	// Without "since" the hub first sends a reset with the queue, then
	// subscribed.
	if m := read(); m["type"] != "reset" {
		t.Fatalf("first message %v, want reset", m)
	}
	if m := read(); m["type"] != "subscribed" {
		t.Fatalf("second message %v, want subscribed", m)
	}
	r := c.do(req{method: "POST", path: "/api/queue/alice/tasks", token: alice, body: `{"type":"chop-wood","count":3}`})
	if r.status != 201 {
		t.Fatalf("enqueue: %d %s", r.status, r.body)
	}
	taskID := r.json(t)["taskId"].(string)
	for {
		m := read()
		if m["type"] != "event" {
			t.Fatalf("message %v, want events", m)
		}
		if strings.Contains(mustJSON(t, m), taskID) && strings.Contains(mustJSON(t, m), "TaskEnqueued") {
			break
		}
	}

	// Another player's queue is refused.
	conn2, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.CloseNow()
	_ = conn2.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","playerId":"bob"}`))
	for {
		if _, _, err = conn2.Read(ctx); err != nil {
			break
		}
	}
	if websocket.CloseStatus(err) != 4403 {
		t.Fatalf("subscribing to bob closed with %v, want 4403", err)
	}
	// A bad token never upgrades.
	if _, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(c.url, "http")+"/api/ws?access_token=nope", nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("bad token: %v %v", resp, err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The hub's refusals before the upgrade are web's problems like any
// other (the hub returns errors, web answers them): a token that is not
// valid is 401 unauthorized, a hub that no longer runs 503 unavailable with
// Retry-After, each with the title of its type.
func TestWebSocketRefusalsAreProblems(t *testing.T) {
	a := apptest.SQLite(t)
	c := newClient(t, a)
	alice := c.token("alice", auth.RolePlayer)
	p := c.do(req{method: "GET", path: "/api/ws", token: alice[:len(alice)-2]}).problem(t, 401, "unauthorized")
	if p["title"] != "Unauthorized" {
		t.Fatalf("401 problem %v, want the title Unauthorized", p)
	}
	p = c.do(req{method: "GET", path: "/api/ws?access_token=nope"}).problem(t, 401, "unauthorized")
	if p["title"] != "Unauthorized" || p["instance"] != "/api/ws" {
		t.Fatalf("401 problem %v, want the title Unauthorized and the instance /api/ws", p)
	}
	a.Realtime.Close()
	r := c.do(req{method: "GET", path: "/api/ws", token: alice})
	if p := r.problem(t, 503, "unavailable"); p["title"] != "Service unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("503 problem %v with Retry-After %q, want the title Service unavailable and a Retry-After", p, r.header.Get("Retry-After"))
	}
}

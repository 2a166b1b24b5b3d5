package web_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/relay"
)

// TestPlayerOfflineAcrossInstances: two whole apps sharing Redis, a
// 1-second presence grace. A player whose socket on one instance closes
// while another instance still holds one is not reported offline; when
// the last socket anywhere closes, player.offline is published once.
func TestPlayerOfflineAcrossInstances(t *testing.T) {
	url, prefix, rdb := teststore.Redis(t) // cleaned after both apps closed
	shared := func(c *app.Config) {
		c.RedisURL, c.RedisPrefix, c.JWTSecret, c.PresenceGrace = url, prefix, apptest.Secret, time.Second
	}
	a, b := apptest.SQLite(t, shared), apptest.SQLite(t, shared)
	ca, cb := newClient(t, a), newClient(t, b)
	tok := ca.token("zoe", auth.RolePlayer)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	subscribe := func(c *client) *websocket.Conn {
		t.Helper()
		conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(c.url, "http")+"/api/ws?access_token="+tok, nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","playerId":"zoe"}`)); err != nil {
			t.Fatal(err)
		}
		for {
			_, m, err := conn.Read(ctx)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if strings.Contains(string(m), `"subscribed"`) {
				return conn
			}
		}
	}
	offline := func() int {
		t.Helper()
		msgs, err := rdb.XRange(ctx, relay.Topic(app.TopicPrefix(a.Config), relay.TypePlayerOffline), "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range msgs {
			payload, _ := m.Values["payload"].(string)
			var ev relay.IntegrationEvent
			if json.Unmarshal([]byte(payload), &ev) == nil && ev.PlayerID == "zoe" {
				n++
			}
		}
		return n
	}

	onA := subscribe(ca)
	onB := subscribe(cb)
	onA.Close(websocket.StatusNormalClosure, "moving on")
	// Well past the grace: zoe is still on b.
	time.Sleep(3 * time.Second)
	if n := offline(); n != 0 {
		t.Fatalf("zoe reported offline %d times while connected to the other instance", n)
	}
	onB.Close(websocket.StatusNormalClosure, "bye")
	for deadline := time.Now().Add(30 * time.Second); offline() == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("zoe's last socket closed and player.offline never came")
		}
	}
	time.Sleep(2 * time.Second) // a second publication would come within the grace
	if n := offline(); n != 1 {
		t.Fatalf("player.offline published %d times, want 1", n)
	}
}

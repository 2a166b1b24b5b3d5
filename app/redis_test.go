package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/processor"
)

// TestPresencePublishesPlayerOffline: with Redis the hub's presence port
// publishes player.offline on the integration stream, with the last
// position; without Redis there is no presence (nothing to publish to).
func TestPresencePublishesPlayerOffline(t *testing.T) {
	url, prefix := testenv.Redis(t)
	var closers []func()
	t.Cleanup(func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	})
	rr, err := openRedis(Config{RedisURL: url, RedisPrefix: prefix, RateLimitPlayer: 1, RateLimitIP: 1}, slog.New(slog.DiscardHandler), &closers)
	if err != nil {
		t.Fatal(err)
	}
	if rr.presence == nil || rr.wakeups == nil {
		t.Fatal("no presence or wake-ups with Redis")
	}
	ctx := context.Background()
	player := "presence-" + prefix[len(prefix)-9:len(prefix)-1] // the prefix's random part
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	if err := rr.presence.PlayerOffline(ctx, domain.PlayerID(player), at, eventstore.Position{Commit: 42, Seq: 42}); err != nil {
		t.Fatalf("PlayerOffline: %v", err)
	}
	rdb := redis.NewClient(mustParse(t, url))
	defer rdb.Close()
	// Under the test's own prefix (TASKQUEUE_REDIS_PREFIX + "taskqueue").
	stream := processor.Topic(TopicPrefix(Config{RedisPrefix: prefix}), processor.TypePlayerOffline)
	defer rdb.Del(context.Background(), stream)
	msgs, err := rdb.XRevRangeN(ctx, stream, "+", "-", 100).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		payload, _ := m.Values["payload"].(string)
		var ev processor.IntegrationEvent
		if json.Unmarshal([]byte(payload), &ev) != nil || ev.PlayerID != player {
			continue
		}
		_ = rdb.XDel(ctx, stream, m.ID).Err()
		var data processor.PlayerOfflineData
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			t.Fatal(err)
		}
		if ev.Type != processor.TypePlayerOffline || !ev.OccurredAt.Equal(at) || data.LastPosition == "" {
			t.Fatalf("player.offline %+v data %+v", ev, data)
		}
		return
	}
	t.Fatalf("no player.offline for %s among %d messages of %s", player, len(msgs), stream)
}

func TestNoRedisMeansInProcess(t *testing.T) {
	var closers []func()
	rr, err := openRedis(Config{}, slog.New(slog.DiscardHandler), &closers)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	if rr.client != nil || rr.presence != nil || rr.wakeups != nil || rr.sessions == nil || rr.limiter == nil {
		t.Fatalf("roles without Redis: %+v", rr)
	}
}

func mustParse(t *testing.T, url string) *redis.Options {
	t.Helper()
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

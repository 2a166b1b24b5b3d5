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
	"github.com/taskqueue/taskqueue/presence"
	"github.com/taskqueue/taskqueue/redisx"
	"github.com/taskqueue/taskqueue/relay"
)

// TestPresencePublishesPlayerOffline: with Redis the hub's presence port
// publishes player.offline on the integration stream, with the last
// position; without Redis there is no presence (nothing to publish to).
func TestPresencePublishesPlayerOffline(t *testing.T) {
	url, prefix := testenv.Redis(t)
	var cl closers
	t.Cleanup(func() { cl.closeAll() })
	rr, err := openRedis(Config{RedisURL: url, RedisPrefix: prefix, RateLimitPlayer: 1, RateLimitIP: 1}, slog.New(slog.DiscardHandler), &cl, nil)
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
	defer rdb.Del(context.Background(), offlineStream(prefix))
	got := offlineEvents(t, rdb, prefix, player)
	if len(got) != 1 || !got[0].at.Equal(at) || got[0].data.LastPosition == "" {
		t.Fatalf("player.offline for %s: %+v, want one at %v with a last position", player, got, at)
	}
}

// offlineEvent is one player.offline read back from the stream.
type offlineEvent struct {
	at   time.Time
	data relay.PlayerOfflineData
}

// offlineEvents returns (and deletes) the player.offline messages of
// player on the stream of prefix (TASKQUEUE_REDIS_PREFIX + "taskqueue").
// The caller deletes the stream (offlineStream) at the end.
func offlineEvents(t *testing.T, rdb redis.UniversalClient, prefix, player string) []offlineEvent {
	t.Helper()
	ctx := context.Background()
	stream := offlineStream(prefix)
	msgs, err := rdb.XRangeN(ctx, stream, "-", "+", 1000).Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []offlineEvent
	for _, m := range msgs {
		payload, _ := m.Values["payload"].(string)
		var ev relay.IntegrationEvent
		if json.Unmarshal([]byte(payload), &ev) != nil || ev.PlayerID != player {
			continue
		}
		_ = rdb.XDel(ctx, stream, m.ID).Err()
		if ev.Type != relay.TypePlayerOffline {
			t.Fatalf("%s on the player.offline stream", ev.Type)
		}
		var data relay.PlayerOfflineData
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			t.Fatal(err)
		}
		out = append(out, offlineEvent{at: ev.OccurredAt, data: data})
	}
	return out
}

func offlineStream(prefix string) string {
	return relay.Topic(TopicPrefix(Config{RedisPrefix: prefix}), relay.TypePlayerOffline)
}

// Two instances (two openRedis on one Redis and prefix): the first to
// leave a player they both hold publishes nothing, the last publishes
// player.offline once; an instance that dies holding a player alone is
// swept by the other, which publishes player.offline without a last
// position. On one Redis server, and on a Redis Cluster of the test's own.
func TestPresencePublishesOnceAcrossInstances(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		url, prefix := testenv.Redis(t)
		presencePublishesOnceAcrossInstances(t, url, prefix)
	})
	t.Run("rediscluster", func(t *testing.T) {
		presencePublishesOnceAcrossInstances(t, testenv.StartRedisCluster(t).URL(), "test:cluster-presence:")
	})
}

func presencePublishesOnceAcrossInstances(t *testing.T, url, prefix string) {
	var cl closers
	t.Cleanup(func() { cl.closeAll() })
	cfg := Config{RedisURL: url, RedisPrefix: prefix, RateLimitPlayer: 1, RateLimitIP: 1}
	discard := slog.New(slog.DiscardHandler)
	a, err := openRedis(cfg, discard, &cl, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := openRedis(cfg, discard, &cl, nil)
	if err != nil {
		t.Fatal(err)
	}
	target, err := redisx.ParseTarget(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := target.NewClient(redisx.Tuning{})
	defer rdb.Close()
	instancesKey := prefix + "presence-instances"
	if target.Cluster() {
		instancesKey = prefix + "{presence}:presence-instances" // a cluster of the test's own: no cleanup
	} else {
		t.Cleanup(func() {
			ctx := context.Background()
			rdb.Del(ctx, offlineStream(prefix))
			iter := rdb.Scan(ctx, 0, prefix+"presence*", 1000).Iterator()
			for iter.Next(ctx) {
				rdb.Del(ctx, iter.Val())
			}
		})
	}
	ctx := context.Background()
	player := domain.PlayerID("both-" + prefix[len(prefix)-9:len(prefix)-1])
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	pos := eventstore.Position{Commit: 7, Seq: 7}
	for _, p := range []*fleetPresence{a.presence, b.presence} {
		if err := p.PlayerOnline(ctx, player, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.presence.PlayerOffline(ctx, player, at, pos); err != nil {
		t.Fatal(err)
	}
	if got := offlineEvents(t, rdb, prefix, string(player)); len(got) != 0 {
		t.Fatalf("A left a player B holds and published %+v", got)
	}
	if err := b.presence.PlayerOffline(ctx, player, at, pos); err != nil {
		t.Fatal(err)
	}
	if got := offlineEvents(t, rdb, prefix, string(player)); len(got) != 1 || got[0].data.LastPosition != pos.String() {
		t.Fatalf("the last instance left: %+v, want one player.offline at %s", got, pos)
	}

	// An instance with a short TTL that dies (its heartbeat stops).
	short := presence.Config{TTL: 300 * time.Millisecond, Heartbeat: 50 * time.Millisecond, Logger: discard}
	dead := newFleetPresence(a.client, a.presence.pub, a.presence.prefix, short)
	sweeper := newFleetPresence(b.client, b.presence.pub, b.presence.prefix, short)
	defer sweeper.shared.Close()
	lone := player + "-lone"
	if err := dead.PlayerOnline(ctx, lone, at); err != nil {
		t.Fatal(err)
	}
	dead.shared.Close()
	var got []offlineEvent
	deadline := time.Now().Add(30 * time.Second)
	for len(got) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		got = append(got, offlineEvents(t, rdb, prefix, string(lone))...)
	}
	for time.Now().Before(deadline) && rdb.ZScore(ctx, instancesKey, dead.shared.Instance()).Err() == nil {
		time.Sleep(20 * time.Millisecond) // until the sweep forgot the dead instance
	}
	got = append(got, offlineEvents(t, rdb, prefix, string(lone))...)
	if len(got) != 1 || got[0].data.LastPosition != "" {
		t.Fatalf("the dead instance's player: %+v, want one player.offline without a last position", got)
	}
}

func TestNoRedisMeansInProcess(t *testing.T) {
	var cl closers
	rr, err := openRedis(Config{}, slog.New(slog.DiscardHandler), &cl, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.closeAll()
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

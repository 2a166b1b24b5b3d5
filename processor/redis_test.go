package processor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/internal/teststore"
)

// With Redis, commands travel on Redis streams in consumer groups: two
// instances share them, and every queue still ends as the rules say.
func TestRedisStreamsShareCommands(t *testing.T) {
	_, prefix, client := teststore.Redis(t)
	url := testenv.Postgres(t)
	b1, b2 := testreadside.Postgres(t, url, 4), testreadside.Postgres(t, url, 4)
	clock := NewManualClock(t0)
	rules := domain.Rules{}
	h := commands(t, b1, clock, rules)
	const players = 40
	tasks := [][2]any{{"mine-copper", 3}, {"mine-tin", 3}, {"smelt-bronze", 3}}
	for i := range players {
		for _, tk := range tasks {
			enqueue(t, h, fmt.Sprintf("r%02d", i), tk[0].(string), tk[1].(int))
		}
	}
	cfg := func(owner string) Config {
		return Config{Clock: clock, Commands: commandConfig(rules), Redis: client, TopicPrefix: prefix + "tq", Owner: owner, Partitions: 2}
	}
	p1 := start(t, b1, cfg("one"))
	p2 := start(t, b2, cfg("two"))
	testenv.WaitUntil(t, waitDeadline, "the schedule", func() (bool, error) {
		var n int
		err := b1.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM processor_schedule`).Scan(&n)
		return n == players, err
	})
	for step := 0; ; step++ {
		testenv.WaitUntil(t, waitDeadline, "every repetition due by now", func() (bool, error) {
			n, err := dueCount(b1, clock.Now())
			return n == 0, err
		})
		var left int
		if err := b1.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM processor_schedule`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if step > 100 {
			t.Fatalf("%d queues still running", left)
		}
		clock.Advance(time.Second)
	}
	s1, s2 := p1.p.Stats(), p2.p.Stats()
	t.Logf("one: %+v, two: %+v", s1, s2)
	if s1.Completed+s2.Completed == 0 {
		t.Fatal("no command handled")
	}
	for i := range players {
		player := fmt.Sprintf("r%02d", i)
		got, recs := readQueue(t, b1, player, rules)
		if n := checkCompletionsOnTime(t, player, recs); n != 9 {
			t.Errorf("%s: %d repetitions completed, want 9", player, n)
		}
		if got.Inventory()["bronze-bar"] != 3 {
			t.Errorf("%s: inventory %v", player, got.Inventory())
		}
	}
	// The streams exist in Redis with their consumer groups.
	c := cfg("")
	groups, err := client.XInfoGroups(context.Background(), c.commandTopic(completeCommandName, 0)).Result()
	if err != nil || len(groups) != 1 {
		t.Fatalf("consumer groups of partition 0: %v, %v", groups, err)
	}
	// Each instance keeps its alive key while it runs (so that the others
	// leave its pending commands to it) and deletes it when it stops (so
	// that they take them at once).
	alive := func(owner string) int64 {
		n, err := client.Exists(context.Background(), c.aliveKey(owner)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if alive("one") != 1 || alive("two") != 1 {
		t.Fatalf("alive keys of running instances: %d, %d", alive("one"), alive("two"))
	}
	// Stopping the processors leaves the caller's client open (watermill's
	// Redis publishers and subscribers close theirs).
	p1.stop()
	if alive("one") != 0 || alive("two") != 1 {
		t.Fatalf("alive keys after one stopped: %d, %d; want 0, 1", alive("one"), alive("two"))
	}
	p2.stop()
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("the caller's Redis client after the processors stopped: %v", err)
	}
}

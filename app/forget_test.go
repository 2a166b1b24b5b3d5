package app

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/api/asyncapi"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/ops"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/relay"
)

// The forgotten player and the one who stays, named so that no other data
// contains them by chance.
const (
	gone = "forgetme7q"
	kept = "keeperz9x"
)

func TestForgetPlayerSQLite(t *testing.T) {
	dir := t.TempDir()
	forgetScenario(t, Config{DataDir: dir}, nil, func(t *testing.T) (*sql.DB, bool) {
		db, err := sql.Open("sqlite", filepath.Join(dir, SQLiteFileName)+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db, false
	})
}

func TestForgetPlayerPostgres(t *testing.T) {
	url := testenv.Postgres(t)
	// The analyst role is cluster-wide: hold the lock of the tests that
	// set its password.
	holdAnalystLock(t, openSQL(t, url))
	cfg := Config{DataDir: t.TempDir(), DatabaseURL: url, DatabaseMaxConns: 6, AnalystPassword: "forget-analyst-pw-5d1e"}
	forgetScenario(t, cfg, nil, func(t *testing.T) (*sql.DB, bool) {
		return openSQL(t, url), true
	})
}

// forgetScenario: two players with queues, history, rewards and sessions;
// an admin forgets one. Then no route gives anything of them back, the
// database holds nothing of them (any table the analyst role may read, and
// more), a rebuild of every read model equals the live ones, the other
// player is untouched, the log reads whole for everyone else (export,
// resume from a position among the forgotten events), player.forgotten is
// published in the spec's shape (PostgreSQL: the outbox), and the same ID
// signing in again starts from an empty queue. With lost (the proxy
// cfg.RedisURL goes through), Redis is lost at the first forget: it
// answers a transient error and erases nothing, and once Redis is back
// the same request does the whole work.
func forgetScenario(t *testing.T, cfg Config, lost *testenv.TCPProxy, openDB func(*testing.T) (*sql.DB, bool)) {
	dev := true
	cfg.Dev, cfg.Catalog, cfg.LogLevel = &dev, fastCatalog(t), "warn"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a, cleanup, err := NewWithLog(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	srv := httptest.NewServer(a.Handler)
	defer srv.Close()
	c := forgetClient{t: t, srv: srv}
	db, postgres := openDB(t)

	goneTok, keptTok, admin := c.token(gone, "player"), c.token(kept, "player"), c.token("opsadmin", "admin")
	for _, p := range []struct{ id, tok string }{{gone, goneTok}, {kept, keptTok}} {
		for _, body := range []string{`{"type":"chop-wood","count":3}`, `{"type":"mine-copper","count":2}`} {
			if code, b := c.call("POST", "/api/queue/"+p.id+"/tasks", p.tok, body); code != 201 && code != 200 {
				t.Fatalf("enqueue for %s: %d %s", p.id, code, b)
			}
		}
	}
	history := func(player, tok string) []any {
		code, b := c.call("GET", "/api/queue/"+player+"/history", tok, "")
		var v struct {
			Entries []any `json:"entries"`
		}
		if code != 200 || json.Unmarshal([]byte(b), &v) != nil {
			t.Fatalf("history of %s: %d %s", player, code, b)
		}
		return v.Entries
	}
	testenv.WaitForWithin(t, time.Minute, "both players' tasks completed", func() bool {
		return len(history(gone, goneTok)) == 2 && len(history(kept, keptTok)) == 2
	})
	// The forgotten player still has a running queue: a schedule row.
	if code, b := c.call("POST", "/api/queue/"+gone+"/tasks", goneTok, `{"type":"chop-wood","count":1000}`); code != 201 && code != 200 {
		t.Fatalf("enqueue the long task: %d %s", code, b)
	}
	head, err := a.Store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A position among the forgotten player's events, for time travel and
	// resumes.
	goneEvents, err := a.Store.ReadStream(ctx, "queue-"+gone, 1, 0)
	if err != nil || len(goneEvents) < 4 {
		t.Fatalf("the player's events: %d, %v", len(goneEvents), err)
	}
	among := goneEvents[len(goneEvents)/2].Position
	testenv.WaitForWithin(t, time.Minute, "the read models caught up", func() bool {
		for _, name := range a.Projections.Names() {
			s, err := a.Projections.StatusOf(ctx, name)
			if err != nil || s.Position.Less(head) {
				return false
			}
		}
		return true
	})
	_, keptQueueBefore := c.call("GET", "/api/queue/"+kept, keptTok, "")
	keptQueueBefore = withoutServerTime(keptQueueBefore)
	_, keptProgressBefore := c.call("GET", "/api/players/"+kept+"/progress", keptTok, "")
	keptHistoryBefore := history(kept, keptTok)

	var forgotten <-chan *watermillMessage
	var rdb *redis.Client
	switch {
	case cfg.RedisURL != "":
		rdb = redis.NewClient(mustParse(t, cfg.RedisURL))
		defer rdb.Close()
		if len(redisHolding(t, rdb, cfg.RedisPrefix, gone)) == 0 {
			t.Fatal("before the forget, Redis holds nothing of the player: the test would check nothing")
		}
	case postgres:
		forgotten = subscribeForgotten(t, ctx, cfg.DatabaseURL, TopicPrefix(a.Config))
	}
	published := postgres || rdb != nil

	// The forget, by an admin.
	if code, b := c.call("POST", "/api/admin/players/"+gone+"/forget", goneTok, ""); code != 403 {
		t.Fatalf("a player forgetting: %d %s; want 403", code, b)
	}
	if code, b := c.call("POST", "/api/admin/players/bad%20id/forget", admin, ""); code != 400 || !strings.Contains(b, "problem") && !strings.Contains(b, "playerId") {
		t.Fatalf("forget a bad ID: %d %s; want 400 problem+json", code, b)
	}
	if lost != nil {
		lost.Stop()
		code, b := c.call("POST", "/api/admin/players/"+gone+"/forget", admin, "")
		if code != 503 || !strings.Contains(b, "problem") {
			t.Fatalf("forget with Redis lost: %d %s; want 503 problem+json", code, b)
		}
		if evs, err := a.Store.ReadStream(ctx, "queue-"+gone, 1, 0); err != nil || len(evs) < len(goneEvents) {
			t.Fatalf("the player's stream after a failed forget: %d events, %v; want its %d or more", len(evs), err, len(goneEvents))
		}
		lost.Start(t)
	}
	code, body := c.call("POST", "/api/admin/players/"+gone+"/forget", admin, "")
	if lost != nil {
		// Until the app's probe sees Redis again (about a second), the
		// forget still answers 503: an operator retries.
		testenv.WaitForWithin(t, 30*time.Second, "the forget to go through once Redis is back", func() bool {
			if code == 503 {
				code, body = c.call("POST", "/api/admin/players/"+gone+"/forget", admin, "")
			}
			return code != 503
		})
	}
	var res ops.ForgetResult
	if code != 200 || json.Unmarshal([]byte(body), &res) != nil {
		t.Fatalf("forget: %d %s", code, body)
	}
	if res.Events < int64(len(goneEvents)) || res.ReadModelRows == 0 || res.Sessions < 1 || res.Published != published {
		t.Fatalf("forget result %+v; want %d events or more, rows, a session, published %v", res, len(goneEvents), published)
	}
	if rdb != nil { // before the reads below cache the (empty) queue again
		if found := redisHolding(t, rdb, cfg.RedisPrefix, gone); len(found) > 0 {
			t.Fatalf("Redis still holds %s:\n%s", gone, strings.Join(found, "\n"))
		}
	}
	for name, gen := range res.Rebuilds {
		if err := a.Projections.WaitRebuilt(ctx, name, gen, 50*time.Millisecond, nil); err != nil {
			t.Fatalf("the rebuild of %s after the forget: %v", name, err)
		}
	}

	// Forgetting again erases nothing more, and says so.
	code, body = c.call("POST", "/api/admin/players/"+gone+"/forget", admin, "")
	var second ops.ForgetResult
	if code != 200 || json.Unmarshal([]byte(body), &second) != nil || second.Events != 0 || second.Sessions != 0 || second.Published != published {
		t.Fatalf("forget again: %d %s; want nothing erased", code, body)
	}
	for name, gen := range second.Rebuilds {
		if err := a.Projections.WaitRebuilt(ctx, name, gen, 50*time.Millisecond, nil); err != nil {
			t.Fatalf("the rebuild of %s after the second forget: %v", name, err)
		}
	}

	// Nothing of the player by any route.
	if code, b := c.call("GET", "/api/queue/"+gone, goneTok, ""); code != 401 {
		t.Fatalf("the forgotten player's old token: %d %s; want 401 (session revoked)", code, b)
	}
	for _, path := range []string{"/api/queue/" + gone, "/api/players/" + gone + "/progress", "/api/queue/" + gone + "/history",
		"/api/admin/players/" + gone + "/events", "/api/admin/players/" + gone + "/queue?at=" + among.String(), "/api/admin/players/" + gone + "/queue"} {
		code, b := c.call("GET", path, admin, "")
		if code == 404 {
			continue
		}
		if code != 200 || strings.Contains(b, "chop-wood") || strings.Contains(b, "mine-copper") || strings.Contains(b, `"version":1`) {
			t.Errorf("GET %s after the forget: %d %s; want 404 or empty", path, code, b)
		}
	}
	var export bytes.Buffer
	if _, err := ops.Export(ctx, a.Store, &export, ops.Range{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(export.String(), gone) || strings.Contains(export.String(), eventstore.DeletedType) {
		t.Fatalf("the export holds the forgotten player or a tombstone")
	}
	if found := tablesHolding(t, db, postgres, gone); len(found) > 0 {
		t.Fatalf("the database still holds %s:\n%s", gone, strings.Join(found, "\n"))
	}
	if cfg.AnalystPassword != "" {
		analyst := openSQL(t, asAnalyst(t, cfg.DatabaseURL, cfg.AnalystPassword))
		forgottenTable := "watermill_" + relay.Topic(TopicPrefix(a.Config), relay.TypePlayerForgotten)
		var schema string
		if err := db.QueryRow(`SELECT current_schema()`).Scan(&schema); err != nil {
			t.Fatal(err)
		}
		if found := analystHolding(t, analyst, schema, forgottenTable, gone); len(found) > 0 {
			t.Fatalf("the analyst role reads %s in:\n%s", gone, strings.Join(found, "\n"))
		}
	}

	// The other player is untouched, and reads the log across the gap.
	if _, b := c.call("GET", "/api/queue/"+kept, keptTok, ""); withoutServerTime(b) != keptQueueBefore {
		t.Errorf("the other player's queue changed:\n%s\n%s", keptQueueBefore, b)
	}
	if _, b := c.call("GET", "/api/players/"+kept+"/progress", keptTok, ""); b != keptProgressBefore {
		t.Errorf("the other player's progress changed:\n%s\n%s", keptProgressBefore, b)
	}
	if h := history(kept, keptTok); len(h) != len(keptHistoryBefore) {
		t.Errorf("the other player's history: %d entries, had %d", len(h), len(keptHistoryBefore))
	}
	keptStream, err := a.Store.ReadStream(ctx, "queue-"+kept, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range keptStream {
		if among.Less(e.Position) {
			want = append(want, e.ID.String())
		}
	}
	after, err := a.Store.ReadAll(ctx, among, eventstore.Filter{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range after {
		got = append(got, e.ID.String())
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("the log read from a position among the forgotten events: %v, want the other player's %v", got, want)
	}

	// A rebuild reproduces the live read models.
	live := dumpReadModels(t, db)
	for _, rows := range live {
		for _, r := range rows {
			if strings.Contains(r, gone) {
				t.Fatalf("a read model still holds the player: %s", r)
			}
		}
	}
	runners := []*projections.Runner{a.Projections}
	if a.Processor != nil {
		runners = append(runners, a.Processor.Runner())
	}
	rebuildAll(t, ctx, runners...)
	rebuilt := dumpReadModels(t, db)
	for _, v := range readModelViews {
		if strings.Join(live[v], "\n") != strings.Join(rebuilt[v], "\n") {
			t.Errorf("%s: the rebuild differs from the live read model\nlive:\n%s\nrebuilt:\n%s", v, strings.Join(live[v], "\n"), strings.Join(rebuilt[v], "\n"))
		}
	}

	// player.forgotten, in the spec's shape.
	if rdb != nil {
		msgs, err := rdb.XRange(ctx, relay.Topic(TopicPrefix(a.Config), relay.TypePlayerForgotten), "-", "+").Result()
		if err != nil || len(msgs) != 2 {
			t.Fatalf("player.forgotten on Redis: %d messages, %v; want 2 (one per forget)", len(msgs), err)
		}
		forgotten = func() <-chan *watermillMessage {
			ch := make(chan *watermillMessage, 1)
			ch <- &watermillMessage{payload: []byte(msgs[0].Values[relay.FieldPayload].(string))}
			return ch
		}()
	}
	if forgotten != nil {
		select {
		case m := <-forgotten:
			var ev relay.IntegrationEvent
			if err := json.Unmarshal(m.payload, &ev); err != nil || ev.Type != relay.TypePlayerForgotten || ev.PlayerID != gone {
				t.Fatalf("player.forgotten: %s, %v", m.payload, err)
			}
			schema, err := asyncapi.IntegrationPayload(ev.Type)
			if err != nil {
				t.Fatal(err)
			}
			if err := asyncapi.Validate(schema, m.payload); err != nil {
				t.Errorf("player.forgotten against the spec: %v", err)
			}
		case <-ctx.Done():
			t.Fatal("no player.forgotten message")
		}
	}

	// The same ID signing in again starts afresh.
	again := c.token(gone, "player")
	code, b := c.call("GET", "/api/queue/"+gone, again, "")
	if code != 200 || strings.Contains(b, "chop-wood") {
		t.Fatalf("the player's queue on signing in again: %d %s; want empty", code, b)
	}
	code, b = c.call("POST", "/api/queue/"+gone+"/tasks", again, `{"type":"mine-copper","count":1}`)
	if code != 201 && code != 200 {
		t.Fatalf("enqueue on signing in again: %d %s", code, b)
	}
	fresh, err := a.Store.ReadStream(ctx, "queue-"+gone, 1, 0)
	if err != nil || len(fresh) == 0 || len(fresh) > 4 || fresh[0].Version != 1 || fresh[0].Type != "TaskEnqueued" {
		t.Fatalf("the stream after signing in again: %d events, %v; want a fresh one from version 1", len(fresh), err)
	}
}

func TestForgetPlayerRedis(t *testing.T) {
	url, prefix := testenv.Redis(t)
	pgURL := testenv.Postgres(t)
	forgetScenario(t, Config{DataDir: t.TempDir(), DatabaseURL: pgURL, DatabaseMaxConns: 6, RedisURL: url, RedisPrefix: prefix}, nil, func(t *testing.T) (*sql.DB, bool) {
		return openSQL(t, pgURL), true
	})
}

// Redis lost during a forget: a transient error, nothing erased; the same
// request finishes the work once Redis is back.
func TestForgetPlayerRedisLost(t *testing.T) {
	url, prefix := testenv.Redis(t)
	u := mustParse(t, url)
	proxy := testenv.StartTCPProxy(t, u.Addr)
	pgURL := testenv.Postgres(t)
	forgetScenario(t, Config{DataDir: t.TempDir(), DatabaseURL: pgURL, DatabaseMaxConns: 6, RedisURL: "redis://" + proxy.Addr() + "/" + fmt.Sprint(u.DB), RedisPrefix: prefix}, proxy, func(t *testing.T) (*sql.DB, bool) {
		return openSQL(t, pgURL), true
	})
}

// With the processor in another process (TASKQUEUE_PROCESSOR=false here),
// forgetting still deletes the player's processor_schedule row, which no
// runner of this process keeps.
func TestForgetWithTheProcessorElsewhere(t *testing.T) {
	url := testenv.Postgres(t)
	dev, off := true, false
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{DataDir: t.TempDir(), DatabaseURL: url, DatabaseMaxConns: 4, Dev: &dev, LogLevel: "warn"}
	proc, cleanup, err := NewWithLog(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	cfg.Processor = &off
	api, cleanupAPI, err := NewWithLog(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanupAPI()
	if api.Processor != nil || proc.Processor == nil {
		t.Fatal("want the processor in one app only")
	}
	if _, err := proc.Commands.EnqueueTask.Handle(ctx, command.EnqueueTask{Type: "chop-wood", Count: 100,
		Request: command.Request{PlayerID: gone, IdempotencyKey: "k1"}}); err != nil {
		t.Fatal(err)
	}
	db := openSQL(t, url)
	scheduled := func() int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM processor_schedule WHERE player_id = $1`, gone).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	testenv.WaitForWithin(t, 30*time.Second, "the schedule row", func() bool { return scheduled() == 1 })
	res, err := ops.ForgetPlayer(ctx, api.Forgetting, gone)
	if err != nil || res.Events == 0 {
		t.Fatalf("forget: %+v, %v", res, err)
	}
	if n := scheduled(); n != 0 {
		t.Fatalf("%d schedule rows of the forgotten player; want 0", n)
	}
}

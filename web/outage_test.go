package web_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

// outageRoute is one request a client may send while a dependency is down.
type outageRoute struct {
	name string
	req  req
	// mayServe: the route may still answer 2xx from memory (a cache, the
	// runner's state) without the database.
	mayServe bool
}

// outageRoutes are every route that reaches the store or the read models,
// for player alice (who has a task, taskID) and admin root.
func outageRoutes(c *client, taskID string) []outageRoute {
	alice, root := c.token("alice", auth.RolePlayer), c.token("root", auth.RoleAdmin)
	key := func(name string) map[string]string {
		return map[string]string{"Idempotency-Key": "outage-" + name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	}
	return []outageRoute{
		{name: "enqueue", req: req{method: "POST", path: "/api/queue/alice/tasks", token: alice, body: `{"type":"chop-wood","count":2}`, headers: key("enqueue")}},
		{name: "remove", req: req{method: "DELETE", path: "/api/queue/alice/tasks/" + taskID, token: alice, headers: key("remove")}},
		{name: "stop", req: req{method: "POST", path: "/api/queue/alice/stop", token: alice, headers: key("stop")}},
		{name: "start", req: req{method: "POST", path: "/api/queue/alice/start", token: alice, headers: key("start")}},
		{name: "reorder", req: req{method: "PUT", path: "/api/queue/alice/reorder", token: alice, body: `{"order":[]}`, headers: key("reorder")}},
		// bob's queue was never read: no cache can answer it.
		{name: "queue", req: req{method: "GET", path: "/api/queue/bob", token: root}},
		{name: "queue minVersion", req: req{method: "GET", path: "/api/queue/bob?minVersion=1", token: root}},
		{name: "history", req: req{method: "GET", path: "/api/queue/alice/history", token: alice}},
		{name: "progress", req: req{method: "GET", path: "/api/players/alice/progress", token: alice}},
		{name: "analytics", req: req{method: "GET", path: "/api/analytics/task-daily", token: root}},
		{name: "admin projections", req: req{method: "GET", path: "/api/admin/projections", token: root}, mayServe: true},
		{name: "admin events", req: req{method: "GET", path: "/api/admin/players/alice/events", token: root}},
		{name: "admin queue at", req: req{method: "GET", path: "/api/admin/players/alice/queue?at=2030-01-01T00:00:00Z", token: root}},
		{name: "admin dead letters", req: req{method: "GET", path: "/api/admin/deadletters", token: root}},
		{name: "admin retry", req: req{method: "POST", path: "/api/admin/deadletters/00000000-0000-0000-0000-000000000000/retry", token: root}},
	}
}

// unavailable checks that r is 503 unavailable with Retry-After.
func unavailable(t *testing.T, what string, r response) {
	t.Helper()
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("%s: status %d, want 503; body %s", what, r.status, r.body)
		return
	}
	r.problem(t, http.StatusServiceUnavailable, "unavailable")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("%s: 503 with Retry-After %q, want whole seconds >= 1", what, r.header.Get("Retry-After"))
	}
}

// timed drives c's server with a client-side limit, recording how
// long each answer took.
func (c *client) timed(r req, limit time.Duration) (response, time.Duration, error) {
	hr, err := http.NewRequest(r.method, c.url+r.path, strings.NewReader(r.body))
	if err != nil {
		return response{}, 0, err
	}
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := (&http.Client{Timeout: limit}).Do(hr)
	if err != nil {
		return response{}, time.Since(start), err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}, time.Since(start), err
}

// wsRefused dials /api/ws and returns the HTTP status of a refusal before
// the upgrade, or the close status after it.
func wsRefused(t *testing.T, c *client, tok string, limit time.Duration) (status int, closeCode websocket.StatusCode, retryAfter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(c.url, "http")+"/api/ws?access_token="+tok, nil)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial /api/ws: %v", err)
		}
		return resp.StatusCode, -1, resp.Header.Get("Retry-After")
	}
	defer conn.CloseNow()
	_ = conn.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","playerId":"alice"}`))
	for {
		if _, _, err = conn.Read(ctx); err != nil {
			return http.StatusSwitchingProtocols, websocket.CloseStatus(err), ""
		}
	}
}

// proxiedPostgres builds the app on a PostgreSQL server of the test's own
// behind a TCP proxy. Its own server, because a partition that catches an
// open write transaction holds back the horizon of every reader of the
// server: on the shared one, every other test's subscriptions would stall.
func proxiedPostgres(t *testing.T, opts ...apptest.Option) (*app.App, *testenv.TCPProxy) {
	t.Helper()
	var p *testenv.TCPProxy
	own := testenv.StartPostgresServer(t).URL()
	opts = append([]apptest.Option{func(cfg *app.Config) {
		cfg.DatabaseURL, p = testenv.ProxyPostgres(t, own)
	}}, opts...)
	a := apptest.Postgres(t, opts...)
	return a, p
}

// seed queues two long tasks for alice and returns the second's ID (a
// task that is not running).
func seed(t *testing.T, c *client) string {
	t.Helper()
	alice := c.token("alice", auth.RolePlayer)
	var id string
	for range 2 {
		r := c.do(req{method: "POST", path: "/api/queue/alice/tasks", token: alice, body: `{"type":"chop-wood","count":1000}`})
		if r.status != 201 {
			t.Fatalf("enqueue: %d %s", r.status, r.body)
		}
		id = r.json(t)["taskId"].(string)
	}
	return id
}

// load keeps player's queue busy until the test ends: a task enqueued and
// removed again and again, so that the projections and the processor have
// events to apply whenever the database goes away.
func load(t *testing.T, c *client, player string) {
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	tok := c.token(player, auth.RolePlayer)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			r, _, err := c.timed(req{method: "POST", path: "/api/queue/" + player + "/tasks", token: tok, body: `{"type":"chop-wood","count":1}`}, 10*time.Second)
			if err != nil || r.status != http.StatusCreated {
				continue
			}
			var task struct {
				TaskID string `json:"taskId"`
			}
			if json.Unmarshal(r.body, &task) == nil {
				_, _, _ = c.timed(req{method: "DELETE", path: "/api/queue/" + player + "/tasks/" + task.TaskID, token: tok}, 10*time.Second)
			}
		}
	}()
}

// waitReadyz polls /readyz until it answers want.
func waitReadyz(t *testing.T, c *client, want int, within time.Duration) response {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, _, err := c.timed(req{method: "GET", path: "/readyz"}, 10*time.Second)
		if err == nil && r.status == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not %d within %s: %d %s (%v)", want, within, r.status, r.body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readyzBody is what /readyz answers.
type readyzBody struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

// waitDependencies polls /readyz until the checks of the dependencies
// (the event store and the read models' database) say "ok", and checks
// that the answer is consistent: 200 exactly when every check is "ok" or
// "degraded" (an optional one), else 503 with Retry-After. The state of
// the projections and the processor, which recover by themselves
// (projections.Runner), is theirs to test.
func waitDependencies(t *testing.T, c *client, within time.Duration) readyzBody {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, _, err := c.timed(req{method: "GET", path: "/readyz"}, 10*time.Second)
		var body readyzBody
		if err == nil && json.Unmarshal(r.body, &body) == nil && body.Checks["store"] == "ok" && body.Checks["readModels"] == "ok" {
			allOK := true
			for _, v := range body.Checks {
				allOK = allOK && (v == "ok" || strings.HasPrefix(v, "degraded: "))
			}
			switch {
			case body.Ready != allOK || (r.status == http.StatusOK) != allOK:
				t.Fatalf("/readyz %d %s: ready and status disagree with the checks", r.status, r.body)
			case !allOK && r.header.Get("Retry-After") == "":
				t.Fatalf("/readyz %d without Retry-After", r.status)
			}
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dependencies are not ok on /readyz within %s: %d %s (%v)", within, r.status, r.body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPostgresRefusedAnswers503: with PostgreSQL refusing connections,
// every route that needs it answers 503 unavailable with Retry-After
// (never 500), /readyz is 503 with Retry-After and names the store, and
// everything works again once PostgreSQL is back, /readyz 200 included,
// without a restart.
func TestPostgresRefusedAnswers503(t *testing.T) {
	if testing.Short() {
		t.Skip("cuts a database connection")
	}
	t.Parallel()
	a, p := proxiedPostgres(t)
	c := newClient(t, a)
	taskID := seed(t, c)
	waitReadyz(t, c, http.StatusOK, time.Minute)

	p.Stop()
	for _, rt := range outageRoutes(c, taskID) {
		r, took, err := c.timed(rt.req, 30*time.Second)
		if err != nil {
			t.Errorf("%s: %v after %s", rt.name, err, took)
			continue
		}
		if rt.mayServe && r.status < 300 {
			continue
		}
		unavailable(t, rt.name, r)
	}
	status, code, retry := wsRefused(t, c, c.token("alice", auth.RolePlayer), 30*time.Second)
	if status != http.StatusServiceUnavailable || retry == "" {
		t.Errorf("/api/ws during the outage: HTTP %d (close %d, Retry-After %q), want 503 with Retry-After before the upgrade", status, code, retry)
	}
	r := waitReadyz(t, c, http.StatusServiceUnavailable, 30*time.Second)
	if r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), `"store"`) {
		t.Errorf("/readyz during the outage: Retry-After %q, body %s; want Retry-After and the store named", r.header.Get("Retry-After"), r.body)
	}

	p.Start(t)
	waitDependencies(t, c, time.Minute)
	waitReadyz(t, c, http.StatusOK, time.Minute)
	alice := c.token("alice", auth.RolePlayer)
	if r := c.do(req{method: "POST", path: "/api/queue/alice/stop", token: alice}); r.status != 200 {
		t.Errorf("stop after the outage: %d %s", r.status, r.body)
	}
	if r := c.do(req{method: "GET", path: "/api/queue/bob", token: c.token("bob", auth.RolePlayer)}); r.status != 200 {
		t.Errorf("read after the outage: %d %s", r.status, r.body)
	}
}

// TestPostgresPartitionBoundedLatency: with PostgreSQL partitioned
// (connections held open, nothing forwarded), every request answers 503
// within the request deadline plus a margin, and a command retried with
// the same Idempotency-Key after the partition heals is applied once.
func TestPostgresPartitionBoundedLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("partitions a database connection")
	}
	t.Parallel()
	const deadline = 2 * time.Second
	a, p := proxiedPostgres(t, func(cfg *app.Config) { cfg.RequestTimeout = deadline })
	c := newClient(t, a)
	taskID := seed(t, c)
	waitReadyz(t, c, http.StatusOK, time.Minute)
	dctx, dcancel := context.WithTimeout(context.Background(), time.Minute)
	defer dcancel()
	early, _, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(c.url, "http")+"/api/ws?access_token="+c.token("alice", auth.RolePlayer), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer early.CloseNow()

	p.Partition()
	healed := false
	defer func() {
		if !healed {
			p.Heal()
		}
	}()
	routes := outageRoutes(c, taskID)
	var (
		mu    sync.Mutex
		took  []time.Duration
		wg    sync.WaitGroup
		limit = deadline + 3*time.Second // the margin: scheduling on a loaded machine
	)
	for _, rt := range routes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, d, err := c.timed(rt.req, 60*time.Second)
			mu.Lock()
			took = append(took, d)
			mu.Unlock()
			if err != nil {
				t.Errorf("%s: %v after %s", rt.name, err, d)
				return
			}
			if d > limit {
				t.Errorf("%s answered %d after %s, want within %s", rt.name, r.status, d.Round(time.Millisecond), limit)
			}
			if rt.mayServe && r.status < 300 {
				return
			}
			unavailable(t, rt.name, r)
		}()
	}
	wg.Wait()
	slices.Sort(took)
	t.Logf("answers under partition (deadline %s): p50 %s, max %s, n %d", deadline,
		took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), len(took))

	// A socket upgraded before the partition and subscribing during it
	// is closed with 1013 (try again later) within the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := early.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","playerId":"alice"}`)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		if _, _, err = early.Read(ctx); err != nil {
			break
		}
	}
	if code, d := websocket.CloseStatus(err), time.Since(start); code != websocket.StatusTryAgainLater || d > limit {
		t.Errorf("subscribe under partition closed with %d after %s (%v), want 1013 within %s", code, d, err, limit)
	}
	status, code, retry := wsRefused(t, c, c.token("alice", auth.RolePlayer), limit)
	if status != http.StatusServiceUnavailable || retry == "" {
		t.Errorf("/api/ws under partition: HTTP %d (close %d, Retry-After %q), want 503 with Retry-After before the upgrade", status, code, retry)
	}

	// The first try of a keyed command times out; the retry after the
	// heal answers the same task, applied once.
	alice := c.token("alice", auth.RolePlayer)
	keyed := req{method: "POST", path: "/api/queue/alice/tasks", token: alice, body: `{"type":"chop-wood","count":7}`,
		headers: map[string]string{"Idempotency-Key": "partition-retry"}}
	r, d, err := c.timed(keyed, 60*time.Second)
	if err != nil || r.status != http.StatusServiceUnavailable || d > limit {
		t.Fatalf("keyed command under partition: %d after %s (%v), want 503 within %s", r.status, d, err, limit)
	}
	p.Heal()
	healed = true
	waitDependencies(t, c, time.Minute)
	first := c.do(keyed)
	if first.status != http.StatusCreated {
		t.Fatalf("retry after the heal: %d %s", first.status, first.body)
	}
	again := c.do(keyed)
	if again.status != http.StatusCreated || again.json(t)["taskId"] != first.json(t)["taskId"] {
		t.Fatalf("second retry: %d %s, want the task of the first %s", again.status, again.body, first.body)
	}
	if ids := enqueued(t, c, "alice", 7); len(ids) != 1 {
		t.Fatalf("the keyed task is stored %d times (%v), want once", len(ids), ids)
	}
}

// enqueued returns the IDs of the tasks of count repetitions that the
// player's stream holds (GET /api/admin/players/{id}/events, the event
// log itself).
func enqueued(t *testing.T, c *client, player string, count int) []string {
	t.Helper()
	r := c.do(req{method: "GET", path: "/api/admin/players/" + player + "/events?type=TaskEnqueued&limit=1000", token: c.token("root", auth.RoleAdmin)})
	if r.status != 200 {
		t.Fatalf("events of %s: %d %s", player, r.status, r.body)
	}
	var body struct {
		Events []struct {
			Data struct {
				TaskID string `json:"taskId"`
				Count  int    `json:"count"`
			} `json:"data"`
		} `json:"events"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("events of %s: %v: %s", player, err, r.body)
	}
	var ids []string
	for _, e := range body.Events {
		if count == 0 || e.Data.Count == count {
			ids = append(ids, e.Data.TaskID)
		}
	}
	return ids
}

// TestTimedOutCommandRetriedOnce plays the ambiguous case a client's retry
// must survive: a command's append reaches PostgreSQL and waits there on a
// lock, the network is partitioned (so the driver's cancel request never
// arrives), the lock goes and the append commits, and the client, past its
// deadline, is answered 503. The retry with the same Idempotency-Key after
// the heal answers the task the first try stored, and it is stored once.
func TestTimedOutCommandRetriedOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a request deadline")
	}
	t.Parallel()
	const deadline = 3 * time.Second
	a, p := proxiedPostgres(t, func(cfg *app.Config) { cfg.RequestTimeout = deadline })
	c := newClient(t, a)
	carol := c.token("carol", auth.RolePlayer)
	// A stopped queue: nothing but this test appends to it.
	if r := c.do(req{method: "POST", path: "/api/queue/carol/tasks", token: carol, body: `{"type":"chop-wood","count":1}`}); r.status != 201 {
		t.Fatalf("enqueue: %d %s", r.status, r.body)
	}
	if r := c.do(req{method: "POST", path: "/api/queue/carol/stop", token: carol}); r.status != 200 {
		t.Fatalf("stop: %d %s", r.status, r.body)
	}

	// Straight to PostgreSQL, not through the proxy.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	direct := strings.Replace(a.Config.DatabaseURL, p.Addr(), p.Target(), 1)
	conn, err := pgx.Connect(ctx, direct)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	watch, err := pgx.Connect(ctx, direct)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	version := func() (v int64) {
		if err := watch.QueryRow(ctx, `SELECT version FROM event_streams WHERE stream_id = 'queue-carol'`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := version()
	lock, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, `SELECT 1 FROM event_streams WHERE stream_id = 'queue-carol' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	keyed := req{method: "POST", path: "/api/queue/carol/tasks", token: carol, body: `{"type":"chop-wood","count":7}`,
		headers: map[string]string{"Idempotency-Key": "ambiguous-commit"}}
	type answer struct {
		r    response
		took time.Duration
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		r, took, err := c.timed(keyed, 60*time.Second)
		answered <- answer{r, took, err}
	}()
	// The append waits on the lock; cut the network under it, then let it
	// commit.
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		var n int
		if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, conn.PgConn().PID()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Since(start) > deadline {
			t.Fatal("the command's append never waited on the lock")
		}
	}
	p.Partition()
	healed := false
	defer func() {
		if !healed {
			p.Heal()
		}
	}()
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); version() == before; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the append that lost its client never committed")
		}
	}
	ans := <-answered
	if ans.err != nil || ans.took > deadline+3*time.Second {
		t.Fatalf("the command whose answer was cut off: %v after %s, want an answer within %s", ans.err, ans.took, deadline+3*time.Second)
	}
	unavailable(t, "the command whose answer was cut off", ans.r)

	p.Heal()
	healed = true
	waitDependencies(t, c, time.Minute)
	stored := enqueued(t, c, "carol", 7)
	if len(stored) != 1 {
		t.Fatalf("before the retry the keyed task is stored %d times (%v), want once", len(stored), stored)
	}
	for i := range 2 {
		r := c.do(keyed)
		if r.status != http.StatusCreated || r.json(t)["taskId"] != stored[0] {
			t.Fatalf("retry %d: %d %s, want 201 with the stored task %s", i+1, r.status, r.body, stored[0])
		}
	}
	if ids := enqueued(t, c, "carol", 7); len(ids) != 1 {
		t.Fatalf("the keyed task is stored %d times (%v), want once", len(ids), ids)
	}
}

// TestReadyzRecoversEveryRound: over many rounds of PostgreSQL refusing
// connections or being partitioned for a second under a light load,
// /readyz answers within its own deadline each time, 503 with Retry-After
// naming the store, and after each restore it is 200 again by itself: its
// dependencies first, then the projections and the processor. (The run
// of issue 12 that never came back was a projection the runner had
// marked failed for a connection error.)
func TestReadyzRecoversEveryRound(t *testing.T) {
	if testing.Short() {
		t.Skip("cuts a database connection many times")
	}
	t.Parallel()
	a, p := proxiedPostgres(t, func(cfg *app.Config) { cfg.RequestTimeout = time.Second })
	c := newClient(t, a)
	seed(t, c)
	waitReadyz(t, c, http.StatusOK, time.Minute)
	load(t, c, "dora")
	const rounds = 12
	var deps, back []time.Duration
	lagging := map[string]int{} // checks not ok yet when the dependencies were
	for i := range rounds {
		partition := i%2 == 1
		if partition {
			p.Partition()
		} else {
			p.Stop()
		}
		r, took, err := c.timed(req{method: "GET", path: "/readyz"}, 30*time.Second)
		switch {
		case err != nil || took > 5*time.Second:
			t.Fatalf("round %d (partition %v): /readyz took %s (%v), want an answer within its deadline", i, partition, took, err)
		case r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), `"store":"event store does not answer`):
			t.Fatalf("round %d (partition %v): /readyz %d Retry-After %q %s, want 503 with Retry-After naming the store", i, partition, r.status, r.header.Get("Retry-After"), r.body)
		}
		time.Sleep(time.Second)
		restored := time.Now()
		if partition {
			p.Heal()
		} else {
			p.Start(t)
		}
		body := waitDependencies(t, c, 30*time.Second)
		deps = append(deps, time.Since(restored))
		for name, state := range body.Checks {
			if state != "ok" {
				lagging[name]++
			}
		}
		// Then the projections and the processor, which retried by
		// themselves, catch up: /readyz is 200 again without a restart.
		waitReadyz(t, c, http.StatusOK, 30*time.Second)
		back = append(back, time.Since(restored))
	}
	slices.Sort(deps)
	slices.Sort(back)
	t.Logf("after a restore, over %d rounds: store and read models ok in median %s, max %s; /readyz 200 in median %s, max %s; checks still catching up when the dependencies were ok: %v",
		rounds, deps[len(deps)/2].Round(time.Millisecond), deps[len(deps)-1].Round(time.Millisecond),
		back[len(back)/2].Round(time.Millisecond), back[len(back)-1].Round(time.Millisecond), lagging)
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory, unmounted
// when the test ends (after everything registered later has closed). It
// skips where the test may not mount (not root, no CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size int, opts ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"-t", "tmpfs", "-o", strings.Join(append([]string{"size=" + strconv.Itoa(size)}, opts...), ","), "tmpfs", dir}
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); this test needs root", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file into dir until the file system is full and returns
// its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			return path
		}
	}
}

// syncBuffer is a log the app and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestSQLiteDiskFull: on the embedded default with its data directory on a
// file system that fills up, commands answer 507 storage-full with
// Retry-After (never 500), the log names the cause, nothing of a refused
// command is stored and nothing acknowledged is lost; once space is freed
// commands succeed again without a restart.
func TestSQLiteDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs")
	}
	t.Parallel()
	dir := mountTmpfs(t, 8<<20)
	var logs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, cleanup, err := app.NewWithLog(ctx, app.Config{DataDir: dir, Addr: "127.0.0.1:0", LogLevel: "warn", QueueLimit: 1000}, &logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	c := newClient(t, a)
	players := []string{"ann", "ben", "cat", "dan"}
	tokens := map[string]string{}
	for _, p := range players {
		tokens[p] = c.token(p, auth.RolePlayer)
	}
	enqueue := func(p string, i int) response {
		return c.do(req{method: "POST", path: "/api/queue/" + p + "/tasks", token: tokens[p],
			body: `{"type":"chop-wood","count":1000}`, headers: map[string]string{"Idempotency-Key": fmt.Sprintf("full-%s-%d", p, i)}})
	}
	acked := map[string][]string{} // player -> task IDs answered 201
	for _, p := range players {
		r := enqueue(p, -1)
		if r.status != http.StatusCreated {
			t.Fatalf("enqueue before the disk is full: %d %s", r.status, r.body)
		}
		acked[p] = append(acked[p], r.json(t)["taskId"].(string))
	}

	filler := fill(t, dir)
	full, accepted := 0, 0
	for i := 0; i < 5000 && full < 20; i++ {
		p := players[i%len(players)]
		r := enqueue(p, i)
		switch r.status {
		case http.StatusCreated:
			acked[p] = append(acked[p], r.json(t)["taskId"].(string))
			accepted++
		case http.StatusInsufficientStorage:
			full++
			pr := r.problem(t, http.StatusInsufficientStorage, "storage-full")
			if r.header.Get("Retry-After") == "" || !strings.Contains(pr["detail"].(string), "storage is full") {
				t.Fatalf("507 without Retry-After or a plain detail: %v %s", r.header, r.body)
			}
		default:
			t.Fatalf("command %d on a full disk: %d %s, want 201 or 507 storage-full", i, r.status, r.body)
		}
	}
	if full == 0 {
		t.Fatal("the disk never filled: no command was refused")
	}
	if !strings.Contains(logs.String(), "database or disk is full") {
		t.Errorf("the log does not name the cause:\n%s", logs.String())
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for _, p := range players {
		r := enqueue(p, 1_000_000)
		if r.status != http.StatusCreated {
			t.Fatalf("enqueue after space was freed: %d %s", r.status, r.body)
		}
		acked[p] = append(acked[p], r.json(t)["taskId"].(string))
	}
	// What is stored is exactly what was acknowledged.
	for _, p := range players {
		if stored := enqueued(t, c, p, 0); !slices.Equal(stored, acked[p]) {
			t.Errorf("%s: stored tasks %v, acknowledged %v", p, stored, acked[p])
		}
	}
	t.Logf("on the full disk: %d commands accepted (WAL space left), then %d refused with 507", accepted, full)
}

// TestSQLiteLockedAnswersWithinDeadline: on the embedded default, while
// another process holds the SQLite file's write lock (an operator's
// import, say), a command waits for it no longer than the request
// deadline (not SQLite's 5 s busy timeout) and answers 503 with
// Retry-After; once the lock is released commands go through.
func TestSQLiteLockedAnswersWithinDeadline(t *testing.T) {
	t.Parallel()
	const deadline = time.Second
	a := apptest.SQLite(t, func(cfg *app.Config) { cfg.RequestTimeout = deadline })
	c := newClient(t, a)
	erin := c.token("erin", auth.RolePlayer)
	enqueue := req{method: "POST", path: "/api/queue/erin/tasks", token: erin, body: `{"type":"chop-wood","count":1}`}
	if r := c.do(enqueue); r.status != http.StatusCreated {
		t.Fatalf("enqueue: %d %s", r.status, r.body)
	}
	other, err := sql.Open("sqlite", filepath.Join(a.Config.DataDir, app.SQLiteFileName)+"?_pragma=busy_timeout(5000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	lock, err := other.Begin()
	if err != nil {
		t.Fatal(err)
	}
	r, took, err := c.timed(enqueue, 30*time.Second)
	if err != nil || took > deadline+2*time.Second {
		t.Fatalf("command behind another process's lock: %v after %s, want an answer within %s", err, took, deadline+2*time.Second)
	}
	unavailable(t, "command behind another process's lock", r)
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	if r := c.do(enqueue); r.status != http.StatusCreated {
		t.Fatalf("enqueue after the lock was released: %d %s", r.status, r.body)
	}
}

// TestRedisDownSessions: with Redis (the session store) down, a request
// with a session still passes (sessions fail open), a refresh and a logout
// answer 503 with Retry-After (not 401: the session's state cannot be
// known, and the logout has reached this instance only), /readyz stays
// 200 and shows redis degraded; once Redis is back the same token
// refreshes, and the logout sent again ends the session.
func TestRedisDownSessions(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedisServer(t)
	a := apptest.SQLite(t, func(cfg *app.Config) { cfg.RedisURL = srv.URL() })
	c := newClient(t, a)
	tok := devToken(t, c, "fay")
	if r := c.do(req{method: "GET", path: "/readyz"}); r.status != 200 || !strings.Contains(string(r.body), `"redis":"ok"`) {
		t.Fatalf("/readyz with Redis up: %d %s", r.status, r.body)
	}

	srv.Stop()
	if r := c.do(req{method: "GET", path: "/api/queue/fay", token: tok}); r.status != 200 {
		t.Errorf("a read with a session while Redis is down: %d %s, want 200 (fail open)", r.status, r.body)
	}
	unavailable(t, "refresh with Redis down", c.do(req{method: "POST", path: "/api/auth/refresh", token: tok}))
	unavailable(t, "logout with Redis down", c.do(req{method: "POST", path: "/api/auth/logout", token: tok}))
	r := c.do(req{method: "GET", path: "/readyz"})
	if r.status != 200 || !strings.Contains(string(r.body), `"redis":"degraded: `) {
		t.Errorf("/readyz with Redis down: %d %s, want 200 with redis degraded", r.status, r.body)
	}

	srv.Start()
	for start := time.Now(); !a.Redis.Up(); time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatal("the app did not notice Redis is back")
		}
	}
	other := devToken(t, c, "gus")
	var refreshed string
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		r := c.do(req{method: "POST", path: "/api/auth/refresh", token: other})
		if r.status == 200 {
			refreshed = r.json(t)["token"].(string)
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("refresh after Redis came back: %d %s", r.status, r.body)
		}
	}
	if r := c.do(req{method: "POST", path: "/api/auth/logout", token: refreshed}); r.status != http.StatusNoContent {
		t.Fatalf("logout after Redis came back: %d %s", r.status, r.body)
	}
	c.do(req{method: "GET", path: "/api/queue/gus", token: other}).problem(t, http.StatusUnauthorized, "unauthorized")
}

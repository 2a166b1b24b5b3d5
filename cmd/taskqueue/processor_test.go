package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/relay"
)

// serviceEnv is the environment of a deployment on the test's own
// PostgreSQL schema and Redis prefix, and a client of that Redis that
// deletes the prefix's keys when the test ends.
func serviceEnv(t *testing.T) (map[string]string, *redis.Client, string) {
	t.Helper()
	redisURL, prefix, rdb := teststore.Redis(t)
	return map[string]string{
		"TASKQUEUE_DATABASE_URL": testenv.Postgres(t),
		"TASKQUEUE_JWT_SECRET":   strings.Repeat("s", 32),
		"TASKQUEUE_REDIS_URL":    redisURL,
		"TASKQUEUE_REDIS_PREFIX": prefix,
		"TASKQUEUE_ADDR":         "127.0.0.1:0",
	}, rdb, prefix
}

// handlers opens the event store of env (applying the migrations) and
// returns command handlers over it, as an API instance would have them.
func handlers(t *testing.T, env map[string]string) (*command.Handlers, eventstore.Store) {
	t.Helper()
	cfg, err := app.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	store, closeStore, err := app.OpenEventStore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeStore)
	rules, err := app.Rules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := command.NewHandlers(store, command.Config{Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	return h, store
}

func enqueueCLI(t *testing.T, h *command.Handlers, player, typ string, count int) {
	t.Helper()
	_, err := h.EnqueueTask.Handle(context.Background(), command.EnqueueTask{
		Request: command.Request{PlayerID: player, Actor: player}, Type: typ, Count: count,
	})
	if err != nil {
		t.Fatalf("enqueue %s for %s: %v", typ, player, err)
	}
}

// streamEvents reads every integration message of one type from its Redis
// stream.
func streamEvents(t *testing.T, rdb *redis.Client, prefix, typ string) []relay.IntegrationEvent {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), relay.Topic(prefix+"taskqueue", typ), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []relay.IntegrationEvent
	for _, m := range msgs {
		payload, _ := m.Values["payload"].(string)
		var ev relay.IntegrationEvent
		if err := json.Unmarshal([]byte(payload), &ev); err != nil {
			t.Fatalf("message %s of %s: %v", m.ID, typ, err)
		}
		out = append(out, ev)
	}
	return out
}

func waitProc(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProcessorCommand runs `taskqueue processor` on PostgreSQL and Redis:
// it completes a queued chain with the right rewards without any API,
// answers the probes, relays the integration events to the Redis streams
// under TASKQUEUE_REDIS_PREFIX, and on cancellation (SIGTERM) stops
// cleanly, releasing its claims and the relay lease.
func TestProcessorCommand(t *testing.T) {
	env, rdb, prefix := serviceEnv(t)
	h, _ := handlers(t, env)
	enqueueCLI(t, h, "pc", "chop-wood", 2)
	enqueueCLI(t, h, "pc", "saw-planks", 1)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	var stderr testenv.SyncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"processor"}, strings.NewReader(""), stdoutW, &stderr, func(k string) string { return env[k] })
		stdoutW.Close()
	}()
	lines := bufio.NewScanner(stdoutR)
	var base string
	for lines.Scan() {
		if _, rest, ok := strings.Cut(lines.Text(), "probes on "); ok {
			base, _, _ = strings.Cut(rest, " ")
			break
		}
	}
	if base == "" {
		t.Fatalf("no probe line; stderr:\n%s", stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()

	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if c, _ := get("/healthz"); c != http.StatusOK {
		t.Fatalf("/healthz: %d", c)
	}
	waitProc(t, "/readyz 200", func() bool { c, _ := get("/readyz"); return c == http.StatusOK })
	if _, body := get("/readyz"); !strings.Contains(body, `"processor":"ok"`) || !strings.Contains(body, `"store":"ok"`) {
		t.Errorf("/readyz body: %s", body)
	}
	if c, body := get("/metrics"); c != http.StatusOK || !strings.Contains(body, "taskqueue_") {
		t.Errorf("/metrics: %d, %.200s", c, body)
	}
	if c, _ := get("/api/queue/pc"); c != http.StatusNotFound {
		t.Errorf("the processor serves the API: GET /api/queue/pc is %d", c)
	}

	// 2 × 3 s of chop-wood and 2 s of saw-planks, completed by the
	// processor alone.
	var view struct {
		tasks     int
		inventory map[string]int64
	}
	waitProc(t, "the chain to complete", func() bool {
		snap, err := h.GetQueue.Handle(context.Background(), command.GetQueue{PlayerID: "pc"})
		if err != nil {
			t.Fatal(err)
		}
		view.tasks, view.inventory = len(snap.View.Tasks), map[string]int64{}
		for k, v := range snap.View.Inventory {
			view.inventory[string(k)] = v
		}
		return view.tasks == 0
	})
	if view.inventory["planks"] != 1 || view.inventory["logs"] != 0 {
		t.Errorf("inventory %v, want 1 plank and no logs", view.inventory)
	}

	// The relay published both task.completed to the deployment's streams.
	waitProc(t, "two task.completed on Redis", func() bool { return len(streamEvents(t, rdb, prefix, relay.TypeTaskCompleted)) >= 2 })
	done := map[string]relay.TaskCompletedData{}
	for _, ev := range streamEvents(t, rdb, prefix, relay.TypeTaskCompleted) {
		var d relay.TaskCompletedData
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		if ev.PlayerID != "pc" {
			t.Errorf("task.completed of %q", ev.PlayerID)
		}
		done[d.TaskType] = d
	}
	if d := done["chop-wood"]; d.Count != 2 || d.Rewards.Items["logs"] != 2 || d.Rewards.XP["woodcutting"] != 20 {
		t.Errorf("task.completed of chop-wood: %+v", d)
	}
	if d := done["saw-planks"]; d.Count != 1 || d.Rewards.Items["planks"] != 1 || d.Rewards.XP["crafting"] != 8 {
		t.Errorf("task.completed of saw-planks: %+v", d)
	}
	// Nothing under the unprefixed names (deployments sharing a Redis
	// server stay apart).
	if n, _ := rdb.Exists(context.Background(), relay.Topic(prefix+"taskqueue", relay.TypeTaskStarted)).Result(); n != 1 {
		t.Errorf("no task.started stream under the prefix")
	}

	cfg, _ := app.FromEnv(func(k string) string { return env[k] })
	db := openDB(t, cfg)
	holder, err := relay.LeaseHolder(context.Background(), db, relay.LeaseName, time.Now())
	if err != nil || holder == "" {
		t.Fatalf("relay lease holder %q, %v; want this processor", holder, err)
	}

	cancel() // SIGTERM
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d after SIGTERM\n%s", c, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("did not stop within 2 minutes\n%s", stderr.String())
	}
	log := stderr.String()
	for _, want := range []string{"processor stopped", "claimsReleased", "stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if holder, err := relay.LeaseHolder(context.Background(), db, relay.LeaseName, time.Now()); err != nil || holder != "" {
		t.Errorf("relay lease still held by %q after the stop (%v)", holder, err)
	}
	var claims int
	if err := db.QueryRow(context.Background(), `SELECT COUNT(*) FROM processor_claims WHERE owner = $1`, holder).Scan(&claims); err != nil || claims != 0 {
		t.Errorf("%d claims left after the stop (%v)", claims, err)
	}
}

// openDB opens the processor's tables of cfg for the test to read.
func openDB(t *testing.T, cfg app.Config) projections.DB {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return projections.NewPostgresDB(pool)
}

// TestRelayCommand: `taskqueue relay --from N` on a PostgreSQL store with
// events publishes to the Redis streams exactly the integration events of
// the domain events at and after N, with the same message for the same
// event, and prints how many.
func TestRelayCommand(t *testing.T) {
	env, rdb, prefix := serviceEnv(t)
	h, store := handlers(t, env)
	for i := range 3 {
		enqueueCLI(t, h, fmt.Sprintf("rc%d", i), "chop-wood", 5)
		enqueueCLI(t, h, fmt.Sprintf("rc%d", i), "mine-copper", 2)
	}
	// 3 × (TaskEnqueued, RepetitionStarted, TaskEnqueued). PostgreSQL's
	// readers see the log up to the horizon, which any transaction of the
	// cluster (another package's test) holds back for a while: wait until
	// all 9 are readable, as the relay will read them.
	var all []eventstore.RecordedEvent
	for deadline := time.Now().Add(time.Minute); len(all) < 9; time.Sleep(20 * time.Millisecond) {
		var err error
		if all, err = store.ReadAll(context.Background(), eventstore.Start, eventstore.Filter{}, 0); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 9 events readable after a minute", len(all))
		}
	}
	// 3 × (TaskEnqueued, RepetitionStarted, TaskEnqueued): from the 4th
	// event on, the integration events are 2 players' queue.updated ×2
	// and task.started ×1 (the first player's come before).
	from := all[3].Position
	wantPositions := map[string]bool{}
	want := 0
	for _, e := range all[3:] {
		switch e.Type {
		case "TaskEnqueued", "RepetitionStarted":
			wantPositions[e.Position.String()] = true
			want++
		default:
			t.Fatalf("unexpected event %s: the count below assumes enqueues and first starts only", e.Type)
		}
	}

	code, out, stderr := runCLI(t, env, "relay", "--from", from.String())
	if code != 0 {
		t.Fatalf("relay: %d %s", code, stderr)
	}
	if !strings.Contains(out, "re-published "+strconv.Itoa(want)+" integration events from position "+from.String()) {
		t.Fatalf("relay printed %q, want %d events from %s", out, want, from)
	}
	got := map[string]bool{}
	var ids []string
	for _, typ := range []string{relay.TypeTaskStarted, relay.TypeQueueUpdated} {
		for _, ev := range streamEvents(t, rdb, prefix, typ) {
			if got[ev.Position] {
				t.Errorf("position %s published twice", ev.Position)
			}
			got[ev.Position] = true
			ids = append(ids, ev.EventID)
			if !wantPositions[ev.Position] {
				t.Errorf("%s of position %s, before --from %s or not an enqueue/start", ev.Type, ev.Position, from)
			}
		}
	}
	if len(got) != want {
		t.Errorf("%d messages on the streams, want %d", len(got), want)
	}

	// Again from the same position: the same messages again (consumers
	// deduplicate by event ID or position).
	if code, out, _ := runCLI(t, env, "relay", "--from", from.String()); code != 0 || !strings.Contains(out, "re-published "+strconv.Itoa(want)+" ") {
		t.Fatalf("second relay: %d %q", code, out)
	}
	var again []string
	for _, typ := range []string{relay.TypeTaskStarted, relay.TypeQueueUpdated} {
		evs := streamEvents(t, rdb, prefix, typ)
		for _, ev := range evs[len(evs)/2:] {
			again = append(again, ev.EventID)
		}
	}
	sort.Strings(ids)
	sort.Strings(again)
	if strings.Join(ids, ",") != strings.Join(again, ",") {
		t.Errorf("the second re-publication is not the same events")
	}

	// From the head on: nothing.
	head, _ := store.Head(context.Background())
	next := relay.Before(eventstore.Position{Commit: head.Commit, Seq: head.Seq + 2})
	if code, out, _ := runCLI(t, env, "relay", "--from", next.String()); code != 0 || !strings.Contains(out, "re-published 0 ") {
		t.Errorf("relay from past the head: %d %q", code, out)
	}

	// Bad input: clear messages, nothing published.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"relay"}, exitUsage, "relay needs --from"},
		{[]string{"relay", "--from", "soon"}, exitUsage, `--from "soon" is not a global position`},
		{[]string{"relay", "--from", "1:x"}, exitUsage, "not a global position"},
		{[]string{"relay", "--from", "1", "extra"}, exitUsage, "no arguments"},
	} {
		if code, _, stderr := runCLI(t, env, tc.args...); code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d %q; want %d mentioning %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
	noRedis := map[string]string{}
	for k, v := range env {
		noRedis[k] = v
	}
	delete(noRedis, "TASKQUEUE_REDIS_URL")
	// Without Redis, PostgreSQL's outbox takes them; SQLite has nowhere to
	// put them.
	if code, out, stderr := runCLI(t, noRedis, "relay", "--from", "0"); code != exitOK || !strings.Contains(out, "re-published ") {
		t.Errorf("relay without Redis on PostgreSQL: exit %d %q %q; want the outbox", code, out, stderr)
	}
	sqlite := map[string]string{"TASKQUEUE_DATA_DIR": t.TempDir()}
	if code, _, stderr := runCLI(t, sqlite, "relay", "--from", "0"); code != exitFail || !strings.Contains(stderr, "TASKQUEUE_REDIS_URL") {
		t.Errorf("relay without Redis on SQLite: exit %d %q", code, stderr)
	}
}

// With TASKQUEUE_PROCESSOR=false serve runs no processor, and admins still
// list the dead letters and retry them: the retry goes to the Redis command
// stream the processors elsewhere consume.
func TestServeWithoutProcessor(t *testing.T) {
	env, rdb, prefix := serviceEnv(t)
	env["TASKQUEUE_PROCESSOR"] = "false"
	cfg, err := app.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	a, cleanup, err := app.NewWithLog(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	if a.Processor != nil {
		t.Fatal("serve built a processor with TASKQUEUE_PROCESSOR=false")
	}
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	tok, _, err := a.Tokens.Mint("root", auth.RoleAdmin, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	topic := prefix + "taskqueue.commands.CompleteRepetition.p3"
	payload := `{"PlayerID":"dl","IdempotencyKey":"complete-t-1","TaskID":"t","Number":1}`
	db := openDB(t, cfg)
	err = db.InTx(context.Background(), func(tx projections.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO processor_dead_letters
			(id, topic, command_name, payload, metadata, error, correlation_id, failed_at)
			VALUES ('dl-1', $1, 'CompleteRepetition', $2, '{"name":"CompleteRepetition"}', 'boom', 'corr-dl', $3)`, topic, payload, time.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call("GET", "/api/admin/deadletters"); code != http.StatusOK || !strings.Contains(body, "dl-1") {
		t.Fatalf("GET /api/admin/deadletters without a processor: %d %s", code, body)
	}
	if code, body := call("POST", "/api/admin/deadletters/dl-1/retry"); code != http.StatusAccepted {
		t.Fatalf("retry without a processor here: %d %s", code, body)
	}
	msgs, err := rdb.XRange(context.Background(), topic, "-", "+").Result()
	if err != nil || len(msgs) != 1 || msgs[0].Values["payload"] != payload {
		t.Fatalf("the retried command on %s: %v %v", topic, msgs, err)
	}
	if code, _ := call("POST", "/api/admin/deadletters/nope/retry"); code != http.StatusNotFound {
		t.Errorf("retry of an unknown dead letter: %d", code)
	}
	cmdCode, _, stderr := runCLI(t, map[string]string{"TASKQUEUE_DATA_DIR": t.TempDir()}, "processor", "extra")
	if cmdCode != exitUsage || !strings.Contains(stderr, "processor takes no arguments") {
		t.Fatalf("processor extra: %d %q", cmdCode, stderr)
	}
}

// startProcessorCLI runs `taskqueue processor` with env until the
// returned stop (SIGTERM) is called; stop waits for it and checks exit 0.
func startProcessorCLI(t *testing.T, env map[string]string) (base string, log *testenv.SyncBuffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	stderr := &testenv.SyncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"processor"}, strings.NewReader(""), stdoutW, stderr, func(k string) string { return env[k] })
		stdoutW.Close()
	}()
	lines := bufio.NewScanner(stdoutR)
	for lines.Scan() {
		if _, rest, ok := strings.Cut(lines.Text(), "probes on "); ok {
			base, _, _ = strings.Cut(rest, " ")
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case c := <-code:
				if c != 0 {
					t.Errorf("processor exit %d\n%s", c, stderr.String())
				}
			case <-time.After(2 * time.Minute):
				t.Errorf("processor did not stop within 2 minutes\n%s", stderr.String())
			}
		})
	}
	t.Cleanup(stop)
	if base == "" {
		stop()
		t.Fatalf("no probe line; stderr:\n%s", stderr.String())
	}
	return base, stderr, stop
}

// Two `taskqueue processor` instances on one database and Redis: they
// share the work, only the lease holder relays (no message is published
// twice), and when the holder stops the other takes over the relay.
func TestTwoProcessorsOneRelay(t *testing.T) {
	env, rdb, prefix := serviceEnv(t)
	h, _ := handlers(t, env)
	cfg, _ := app.FromEnv(func(k string) string { return env[k] })
	db := openDB(t, cfg)
	_, logA, stopA := startProcessorCLI(t, env)
	_, _, stopB := startProcessorCLI(t, env)
	const players = 6
	for i := range players {
		enqueueCLI(t, h, fmt.Sprintf("tp%d", i), "chop-wood", 1)
	}
	completed := func() []relay.IntegrationEvent {
		return streamEvents(t, rdb, prefix, relay.TypeTaskCompleted)
	}
	waitProc(t, "every task.completed", func() bool { return len(completed()) >= players })
	holder, err := relay.LeaseHolder(context.Background(), db, relay.LeaseName, time.Now())
	if err != nil || holder == "" {
		t.Fatalf("relay lease holder %q, %v", holder, err)
	}
	// Both instances run processors and relays; one relays. No message
	// twice (a second relay would publish from the same checkpoint).
	checkOnce := func(typ string) {
		t.Helper()
		seen := map[string]bool{}
		for _, ev := range streamEvents(t, rdb, prefix, typ) {
			k := ev.EventID + "/" + ev.Type
			if seen[k] {
				t.Errorf("%s of event %s published twice", typ, ev.EventID)
			}
			seen[k] = true
		}
	}
	for _, typ := range []string{relay.TypeTaskStarted, relay.TypeTaskCompleted, relay.TypeQueueUpdated} {
		checkOnce(typ)
	}

	// Stop the holder (SIGTERM): the other takes over the relay.
	stopHolder, other := stopB, stopA
	if strings.Contains(logA.String(), "owner="+holder) {
		stopHolder, other = stopA, stopB
	}
	stopHolder()
	for i := range players {
		enqueueCLI(t, h, fmt.Sprintf("tp%d", i), "chop-wood", 1)
	}
	waitProc(t, "the task.completed after the stop", func() bool { return len(completed()) >= 2*players })
	after, err := relay.LeaseHolder(context.Background(), db, relay.LeaseName, time.Now())
	if err != nil || after == "" {
		t.Fatalf("relay lease holder after the stop %q, %v", after, err)
	}
	if after == holder {
		t.Fatalf("the stopped instance %s still holds the relay lease", holder)
	}
	for _, typ := range []string{relay.TypeTaskStarted, relay.TypeTaskCompleted, relay.TypeQueueUpdated} {
		checkOnce(typ)
	}
	other()
}

func TestProcessorAndRelayHelp(t *testing.T) {
	if code, out, _ := runCLI(t, nil, "help"); code != 0 || !strings.Contains(out, "taskqueue processor") || !strings.Contains(out, "taskqueue relay --from N") {
		t.Fatalf("help: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, nil, "help", "processor"); code != 0 || !strings.Contains(out, "TASKQUEUE_ADDR") {
		t.Fatalf("help processor: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, nil, "help", "relay"); code != 0 || !strings.Contains(out, "-from") {
		t.Fatalf("help relay: %d %q", code, out)
	}
}

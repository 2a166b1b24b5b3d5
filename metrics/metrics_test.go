package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore/postgres"
	"github.com/taskqueue/taskqueue/eventstore/sqlite"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/metrics"
	"github.com/taskqueue/taskqueue/projections"
	"github.com/taskqueue/taskqueue/realtime"
)

// families are every metric family issue 8 names, as /metrics shows them.
var families = []string{
	"taskqueue_http_requests_total",
	"taskqueue_http_request_duration_seconds",
	"taskqueue_commands_total",
	"taskqueue_command_duration_seconds",
	"taskqueue_events_appended_total",
	"taskqueue_active_queues",
	"taskqueue_repetitions_total",
	"taskqueue_processor_lateness_seconds",
	"taskqueue_projection_position",
	"taskqueue_projection_lag_events",
	"taskqueue_projection_lag_seconds",
	"taskqueue_projection_state",
	"taskqueue_websocket_connections",
	"taskqueue_websocket_slow_disconnects_total",
	"taskqueue_dead_letters",
	"taskqueue_redis_errors_total",
	"taskqueue_database_errors_total",
	"go_goroutines",
	"go_memstats_heap_alloc_bytes",
	"process_resident_memory_bytes",
}

// A small workload through the real pieces (SQLite store, command
// handlers, chi router, projections runner, WebSocket hub, Redis,
// PostgreSQL), then a scrape of /metrics: every family is there, and the
// values the workload drove are right.
func TestMetricsAfterAWorkload(t *testing.T) {
	ctx := context.Background()
	reg := metrics.New()

	raw, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "taskqueue.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	store := reg.Store(raw)
	db := projections.NewSQLiteStoreDB(raw)

	// The game clock starts 10 s ago, so a completion by the processor
	// ("system") is about 7 s late.
	var clockNanos atomic.Int64
	clockNanos.Store(time.Now().Add(-10 * time.Second).UnixNano())
	clock := func() time.Time { return time.Unix(0, clockNanos.Load()).UTC() }
	handlers, err := command.NewHandlers(store, command.Config{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	handlers.Use(command.Metrics(reg.ObserveCommand))

	runner, err := projections.NewRunner(projections.Config{Store: store, DB: db,
		Projections: []projections.Projection{projections.Queues{}, projections.PlayerProgress{}}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = runner.Run(runCtx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	tokens, err := auth.NewTokens(auth.TokensConfig{Secret: []byte(strings.Repeat("metrics-secret-", 3))})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := realtime.NewHub(realtime.Config{Store: store, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)

	reg.SetSources(metrics.Sources{
		Projections:  runner.Status,
		ActiveQueues: metrics.ActiveQueuesIn(db),
		DeadLetters:  metrics.DeadLettersIn(db),
		WebSocket: func() (int64, int64) {
			s := hub.Stats()
			return s.Connections, s.SlowDisconnects
		},
	})

	router := chi.NewRouter()
	router.Post("/api/queue/{playerId}/tasks", func(w http.ResponseWriter, r *http.Request) {
		_, err := handlers.EnqueueTask.Handle(r.Context(), command.EnqueueTask{
			Request: command.Request{PlayerID: chi.URLParam(r, "playerId"), Actor: chi.URLParam(r, "playerId")},
			Type:    r.URL.Query().Get("type"), Count: 2,
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	router.Get("/api/queue/{playerId}", func(w http.ResponseWriter, r *http.Request) {
		snap, err := handlers.GetQueue.Handle(r.Context(), command.GetQueue{PlayerID: chi.URLParam(r, "playerId")})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(snap.View)
	})
	router.Get("/api/ws", func(w http.ResponseWriter, r *http.Request) {
		if err := hub.Serve(w, r); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	router.Handle("/metrics", reg.Handler())
	srv := httptest.NewServer(reg.HTTP(router))
	t.Cleanup(srv.Close)

	do := func(method, path string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d", method, path, resp.StatusCode, want)
		}
	}
	do("POST", "/api/queue/alice/tasks?type=chop-wood", http.StatusCreated)
	do("POST", "/api/queue/alice/tasks?type=no-such-task", http.StatusUnprocessableEntity)
	do("POST", "/api/queue/bob/tasks?type=saw-planks", http.StatusCreated) // no logs: the task fails at once
	do("GET", "/api/queue/alice", http.StatusOK)
	do("GET", "/api/queue/bob", http.StatusOK)
	do("GET", "/no/such/route/42", http.StatusNotFound)

	// The processor completes alice's first repetition (due 3 s after the
	// enqueue) at game time +4 s.
	snap, err := handlers.GetQueue.Handle(ctx, command.GetQueue{PlayerID: "alice"})
	if err != nil || snap.View.Repetition == nil {
		t.Fatalf("alice's queue: %+v, %v", snap.View, err)
	}
	clockNanos.Add(int64(4 * time.Second))
	if _, err := handlers.CompleteRepetition.Handle(ctx, command.CompleteRepetition{
		Request: command.Request{PlayerID: "alice", Actor: "system"},
		TaskID:  string(snap.View.Repetition.TaskID), Number: snap.View.Repetition.Number,
	}); err != nil {
		t.Fatal(err)
	}

	// A dead letter, as the processor's poison queue stores one.
	if err := db.InTx(ctx, func(tx projections.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO processor_dead_letters (id, topic, command_name, payload, metadata, error, failed_at)
			VALUES ('dl-1', 'taskqueue.commands.0', 'CompleteRepetition', '{}', '{}', 'boom', $1)`, time.Now().UTC())
		return err
	}); err != nil {
		t.Fatalf("insert a dead letter: %v", err)
	}

	// A WebSocket client subscribed to alice's queue.
	tok, _, err := tokens.Mint("alice", auth.RolePlayer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wsCtx, wsCancel := context.WithTimeout(ctx, 30*time.Second)
	defer wsCancel()
	conn, _, err := websocket.Dial(wsCtx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/api/ws?access_token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	if err := conn.Write(wsCtx, websocket.MessageText, []byte(`{"type":"subscribe","playerId":"alice"}`)); err != nil {
		t.Fatal(err)
	}
	for subscribed := false; !subscribed; {
		_, b, err := conn.Read(wsCtx)
		if err != nil {
			t.Fatalf("read the socket: %v", err)
		}
		subscribed = strings.Contains(string(b), `"type":"subscribed"`)
	}

	// Redis: a failing command counts, a missing key does not.
	redisURL, prefix := testenv.Redis(t)
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	t.Cleanup(func() { rc.Del(context.Background(), prefix+"word"); rc.Close() })
	rc.AddHook(reg.RedisHook())
	if err := rc.Set(ctx, prefix+"word", "not a number", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Incr(ctx, prefix+"word").Err(); err == nil {
		t.Fatal("INCR of a word succeeded")
	}
	if err := rc.Get(ctx, prefix+"missing").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET of a missing key: %v", err)
	}

	// A database error: a PostgreSQL store whose pool went away.
	pool, err := pgxpool.New(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	pg, err := postgres.New(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	pgStore := reg.Store(pg)
	pool.Close()
	if _, err := pgStore.Head(ctx); err == nil {
		t.Fatal("Head on a closed pool succeeded")
	}
	pg.Close()

	// The projections have applied everything.
	head, err := raw.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := runner.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ok := len(st) == 2
		for _, s := range st {
			ok = ok && s.State == projections.StateLive && !s.Position.Less(head)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections did not catch up: %+v", st)
		}
		select {
		case <-runner.Committed():
		case <-time.After(50 * time.Millisecond):
		}
	}

	// Scrape.
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, f := range families {
		if !strings.Contains(text, "\n# TYPE "+f+" ") {
			t.Errorf("/metrics has no family %s", f)
		}
	}

	mfs, err := reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string, labels map[string]string) (float64, bool) {
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		next:
			for _, m := range mf.GetMetric() {
				have := map[string]string{}
				for _, l := range m.GetLabel() {
					have[l.GetName()] = l.GetValue()
				}
				for k, v := range labels {
					if have[k] != v {
						continue next
					}
				}
				return metricValue(m), true
			}
		}
		return 0, false
	}
	expect := func(name string, labels map[string]string, want func(float64) bool, what string) {
		t.Helper()
		v, ok := value(name, labels)
		if !ok {
			t.Errorf("%s%v: no series", name, labels)
			return
		}
		if !want(v) {
			t.Errorf("%s%v = %v, want %s", name, labels, v, what)
		}
	}
	eq := func(n float64) func(float64) bool { return func(v float64) bool { return v == n } }
	atLeast := func(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }

	expect("taskqueue_http_requests_total", map[string]string{"route": "/api/queue/{playerId}/tasks", "method": "POST", "status": "201"}, eq(2), "2")
	expect("taskqueue_http_requests_total", map[string]string{"route": "/api/queue/{playerId}/tasks", "method": "POST", "status": "422"}, eq(1), "1")
	expect("taskqueue_http_requests_total", map[string]string{"route": "/api/queue/{playerId}", "method": "GET", "status": "200"}, eq(2), "2")
	expect("taskqueue_http_requests_total", map[string]string{"route": "unmatched", "method": "GET", "status": "404"}, eq(1), "1")
	expect("taskqueue_http_request_duration_seconds", map[string]string{"route": "/api/queue/{playerId}/tasks", "method": "POST"}, eq(3), "3 observations")
	expect("taskqueue_commands_total", map[string]string{"command": "EnqueueTask", "outcome": "ok"}, eq(2), "2")
	expect("taskqueue_commands_total", map[string]string{"command": "EnqueueTask", "outcome": "rejected"}, eq(1), "1")
	expect("taskqueue_commands_total", map[string]string{"command": "CompleteRepetition", "outcome": "ok"}, eq(1), "1")
	expect("taskqueue_command_duration_seconds", map[string]string{"command": "EnqueueTask"}, eq(3), "3 observations")
	expect("taskqueue_events_appended_total", map[string]string{"type": "TaskEnqueued"}, eq(2), "2")
	expect("taskqueue_events_appended_total", map[string]string{"type": "RepetitionCompleted"}, eq(1), "1")
	expect("taskqueue_repetitions_total", map[string]string{"outcome": "completed"}, eq(1), "1")
	expect("taskqueue_repetitions_total", map[string]string{"outcome": "failed"}, eq(1), "1")
	expect("taskqueue_processor_lateness_seconds", nil, eq(1), "1 observation")
	expect("taskqueue_active_queues", nil, eq(1), "1 (alice runs; bob's task failed)")
	expect("taskqueue_dead_letters", nil, eq(1), "1")
	expect("taskqueue_websocket_connections", nil, eq(1), "1")
	expect("taskqueue_websocket_slow_disconnects_total", nil, eq(0), "0")
	expect("taskqueue_projection_position", map[string]string{"projection": "queues"}, eq(float64(head.Seq)), "the head")
	expect("taskqueue_projection_lag_events", map[string]string{"projection": "queues"}, eq(0), "0")
	expect("taskqueue_projection_lag_seconds", map[string]string{"projection": "player_progress"}, eq(0), "0")
	expect("taskqueue_projection_state", map[string]string{"projection": "queues", "state": "live"}, eq(1), "1")
	expect("taskqueue_projection_state", map[string]string{"projection": "queues", "state": "failed"}, eq(0), "0")
	expect("taskqueue_redis_errors_total", map[string]string{"command": "incr"}, eq(1), "1")
	if _, ok := value("taskqueue_redis_errors_total", map[string]string{"command": "get"}); ok {
		t.Error("a missing key counted as a Redis error")
	}
	expect("taskqueue_database_errors_total", map[string]string{"operation": "head"}, eq(1), "1")
	expect("go_goroutines", nil, atLeast(1), ">= 1")

	// The lateness observed is the processor's: about 7 s here, never
	// negative, and below the 10 s the clock started behind.
	for _, mf := range mfs {
		if mf.GetName() == "taskqueue_processor_lateness_seconds" {
			s := mf.GetMetric()[0].GetHistogram().GetSampleSum()
			if s < 6 || s > 60 {
				t.Errorf("lateness %v s, want about 7 s", s)
			}
		}
	}
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return -1
}

func TestOutcomeClassifiesCommandErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{command.ErrConflict, "conflict"},
		{&command.PreconditionFailedError{}, "precondition_failed"},
		{domain.ErrQueueFull, "rejected"},
		{&domain.ValidationError{Field: "count", Reason: "too big"}, "rejected"},
		{context.Canceled, "canceled"},
		{errors.New("connection reset"), "error"},
	} {
		if got := metrics.Outcome(c.err); got != c.want {
			t.Errorf("Outcome(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

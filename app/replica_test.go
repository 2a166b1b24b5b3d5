package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/projections"
)

// primaryAndStandby starts a PostgreSQL server of the test's own and a
// streaming hot standby of it (pg_basebackup -R).
func primaryAndStandby(t testing.TB) (primary, standby *testenv.PostgresServer) {
	t.Helper()
	primary = testenv.StartPostgresServer(t)
	dir := primary.ServerDir()
	primary.Run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port()), "-U", "postgres",
		"-D", filepath.Join(dir, "data"), "-X", "stream", "-R", "-c", "fast")
	return primary, testenv.StartPostgresServerWith(t, testenv.PostgresOptions{DataDir: filepath.Join(dir, "data")})
}

// With a hot standby in TASKQUEUE_DATABASE_REPLICA_URLS, queries read from
// it; a client's minVersion is always answered with its write (from the
// standby once replayed, else the primary), and when the standby dies the
// primary serves every query within the request deadline.
func TestReadReplica(t *testing.T) {
	primary, standby := primaryAndStandby(t)

	dev := true
	a, cleanup, err := NewWithLog(context.Background(), Config{DataDir: t.TempDir(), Dev: &dev, DatabaseURL: primary.URL(),
		DatabaseReplicaURLs: []string{standby.URL()}, RequestTimeout: 2 * time.Second}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	srv := httptest.NewServer(a.Handler)
	defer srv.Close()
	call := func(method, path, token, body string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, string(b)
	}
	_, _, body := call("POST", "/api/auth/dev-token", "", `{"player":"alice"}`)
	var tok struct{ Token string }
	if err := json.Unmarshal([]byte(body), &tok); err != nil || tok.Token == "" {
		t.Fatalf("dev token: %s", body)
	}
	outcomes := func() map[string]int {
		_, _, text := call("GET", "/metrics", "", "")
		got := map[string]int{}
		for _, m := range regexp.MustCompile(`taskqueue_replica_reads_total\{outcome="(\w+)"\} (\d+)`).FindAllStringSubmatch(text, -1) {
			got[m[1]], _ = strconv.Atoi(m[2])
		}
		return got
	}

	// Read your writes, every time, through the replica path.
	for i := range 10 {
		code, h, body := call("POST", "/api/queue/alice/tasks", tok.Token, `{"type":"chop-wood","count":1}`)
		if code != 201 {
			t.Fatalf("enqueue %d: %d %s", i, code, body)
		}
		etag := strings.Trim(h.Get("ETag"), `"`)
		wrote, err := strconv.ParseInt(etag, 10, 64)
		if err != nil {
			t.Fatalf("enqueue %d: ETag %q", i, h.Get("ETag"))
		}
		code, _, body = call("GET", "/api/queue/alice?minVersion="+etag, tok.Token, "")
		var view struct{ Version int64 }
		if code != 200 || json.Unmarshal([]byte(body), &view) != nil {
			t.Fatalf("read after write %d: %d %s", i, code, body)
		}
		if view.Version < wrote {
			t.Fatalf("read after write %d: version %d, wrote %d", i, view.Version, wrote)
		}
	}
	// Reads without a version come from the standby once it has replayed.
	time.Sleep(300 * time.Millisecond)
	for range 10 {
		if code, _, body := call("GET", "/api/queue/alice/history", tok.Token, ""); code != 200 {
			t.Fatalf("history: %d %s", code, body)
		}
	}
	before := outcomes()
	t.Logf("replica outcomes with the standby up: %v", before)
	if before["replica"] < 10 {
		t.Fatalf("replica outcomes %v: the standby answered fewer than the 10 history reads", before)
	}

	// The standby dies: the primary answers, within the deadline.
	standby.Stop()
	for _, path := range []string{"/api/queue/alice", "/api/queue/alice/history", "/api/players/alice/progress"} {
		start := time.Now()
		code, _, body := call("GET", path, tok.Token, "")
		if code != 200 {
			t.Fatalf("%s with the standby down: %d %s", path, code, body)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("%s with the standby down took %s, over the 2 s request deadline", path, took)
		}
	}
	if after := outcomes(); after["error"] < 3 {
		t.Fatalf("replica outcomes after the standby died: %v; want the 3 reads answered by the primary", after)
	}
}

// BenchmarkReplicaVsPrimaryRead: a queue view read from the hot standby and
// from the primary, in the same loop (the replica's latency next to the
// primary's: docs/BENCHMARKS.md).
func BenchmarkReplicaVsPrimaryRead(b *testing.B) {
	primary, standby := primaryAndStandby(b)
	dev := true
	a, cleanup, err := NewWithLog(context.Background(), Config{DataDir: b.TempDir(), Dev: &dev, DatabaseURL: primary.URL(),
		DatabaseReplicaURLs: []string{standby.URL()}}, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	defer cleanup()
	ctx := context.Background()
	for i := range 5 {
		if _, err := a.Commands.EnqueueTask.Handle(ctx, command.EnqueueTask{Type: "chop-wood", Count: 3,
			Request: command.Request{PlayerID: "alice", IdempotencyKey: strconv.Itoa(i)}}); err != nil {
			b.Fatal(err)
		}
	}
	pool := func(url string) projections.Querier {
		p, err := pgxpool.New(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(p.Close)
		return projections.NewPostgresDB(p)
	}
	sides := []struct {
		name string
		rm   *projections.ReadModels
	}{{"replica", projections.NewReadModels(pool(standby.URL()).(projections.DB))}, {"primary", projections.NewReadModels(pool(primary.URL()).(projections.DB))}}
	time.Sleep(time.Second) // the projections and the standby catch up
	took := make([]time.Duration, len(sides))
	n := 0
	for b.Loop() {
		for i, s := range sides {
			start := time.Now()
			if _, err := s.rm.QueueSnapshot(ctx, "alice"); err != nil {
				b.Fatal(err)
			}
			took[i] += time.Since(start)
		}
		n++
	}
	for i, s := range sides {
		b.ReportMetric(float64(took[i].Microseconds())/float64(n), s.name+"-µs/read")
	}
	b.ReportMetric(float64(took[0])/float64(took[1]), "replica÷primary")
}

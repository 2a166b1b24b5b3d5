package realtime_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/realtime"
	"github.com/taskqueue/taskqueue/web/auth"
)

// BenchmarkFanout measures, on one instance over the embedded SQLite store,
// the server's memory per idle subscribed socket and the append-to-client
// latency at a steady event rate. The clients run in a child process (the
// file descriptor limit of one process would not hold both ends). b.N is
// ignored: run with -benchtime=1x. Settings by environment:
//
//	TASKQUEUE_BENCH_CLIENTS   sockets, one player each (default 10000)
//	TASKQUEUE_BENCH_RATE      events per second (default 1000)
//	TASKQUEUE_BENCH_SECONDS   how long events are appended (default 20)
//
// go test -run '^$' -bench BenchmarkFanout -benchtime=1x ./realtime/
func BenchmarkFanout(b *testing.B) {
	clients := envInt("TASKQUEUE_BENCH_CLIENTS", 10000)
	rate := envInt("TASKQUEUE_BENCH_RATE", 1000)
	seconds := envInt("TASKQUEUE_BENCH_SECONDS", 20)

	store := openSQLite(b)
	tokens := newTokens(b)
	h, err := command.NewHandlers(store, command.Config{})
	if err != nil {
		b.Fatal(err)
	}
	hub, err := realtime.NewHub(realtime.Config{Store: store, Tokens: tokens, ViewCacheSize: clients + 100})
	if err != nil {
		b.Fatal(err)
	}
	if err := hub.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(hub)
	defer func() { hub.Close(); srv.Close() }()

	runtime.GC()
	debug.FreeOSMemory()
	before := memNow()

	// The child dials every socket, reports "ready", then prints
	// "<position> <unix nanos>" for every event it receives.
	admin := token(b, tokens, "bench", auth.RoleAdmin)
	child := exec.Command(os.Args[0], "-test.run=^TestFanoutClients$", "-test.v")
	child.Env = append(os.Environ(),
		"TASKQUEUE_BENCH_CHILD_URL="+"ws"+strings.TrimPrefix(srv.URL, "http")+"/api/ws",
		"TASKQUEUE_BENCH_CHILD_TOKEN="+admin,
		"TASKQUEUE_BENCH_CLIENTS="+strconv.Itoa(clients))
	out, err := child.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	lines := bufio.NewScanner(out)
	dialStart := time.Now()
	for lines.Scan() && lines.Text() != "ready" {
	}
	b.Logf("%d sockets dialed and subscribed in %s", clients, time.Since(dialStart).Round(time.Millisecond))
	testenv.WaitFor(b, "every socket to be subscribed", func() bool { return hub.Stats().Connections == int64(clients) })

	runtime.GC()
	debug.FreeOSMemory()
	idle := memNow()
	perConn := float64(idle.heapStack-before.heapStack) / float64(clients)
	perConnRSS := float64(idle.rss-before.rss) / float64(clients)
	b.Logf("%d idle sockets: heap %+.1f MiB + stacks %+.1f MiB (%.0f B each), RSS %+.1f MiB (%.0f B each), goroutines %d",
		clients, mib(idle.heap-before.heap), mib(idle.stack-before.stack), perConn, mib(idle.rss-before.rss), perConnRSS, runtime.NumGoroutine())
	if p := os.Getenv("TASKQUEUE_BENCH_HEAPPROFILE"); p != "" {
		f, err := os.Create(p)
		if err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}

	// Receipts from the child, by position.
	var mu sync.Mutex
	received := map[string]int64{}
	go func() {
		for lines.Scan() {
			pos, at, ok := strings.Cut(lines.Text(), " ")
			if !ok {
				continue
			}
			n, _ := strconv.ParseInt(at, 10, 64)
			mu.Lock()
			received[pos] = n
			mu.Unlock()
		}
	}()

	// Append at a steady rate: each command stops or starts one player's
	// empty queue, exactly one event.
	sent := map[string]int64{}
	var sentMu sync.Mutex
	total := rate * seconds
	stopped := make([]atomic.Bool, clients)
	var late atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	const producers = 8
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < total; i += producers {
				at := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				} else if d < -10*time.Millisecond {
					late.Add(1)
				}
				player := (i*7919 + p) % clients
				req := command.Request{PlayerID: fmt.Sprintf("p%d", player), Actor: "bench"}
				t0 := time.Now()
				var res command.Result
				var err error
				if stopped[player].Load() {
					res, err = h.StartQueue.Handle(context.Background(), command.StartQueue{Request: req})
				} else {
					res, err = h.StopQueue.Handle(context.Background(), command.StopQueue{Request: req})
				}
				if err != nil {
					b.Error(err)
					return
				}
				stopped[player].Store(!stopped[player].Load())
				if res.Position.IsZero() {
					continue // another producer got there first: no event
				}
				sentMu.Lock()
				sent[res.Position.String()] = t0.UnixNano()
				sentMu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		n := len(received)
		mu.Unlock()
		if n >= len(sent) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d events reached their client; hub %+v", n, len(sent), hub.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var lat []time.Duration
	mu.Lock()
	for pos, t0 := range sent {
		if t1, ok := received[pos]; ok {
			lat = append(lat, time.Duration(t1-t0))
		}
	}
	mu.Unlock()
	slices.Sort(lat)
	q := func(f float64) time.Duration { return lat[min(len(lat)-1, int(f*float64(len(lat))))] }
	b.Logf("%d events in %s (%.0f/s, %d appended >10ms late), append-to-client latency p50 %s p99 %s max %s; slow disconnects %d",
		len(sent), elapsed.Round(time.Millisecond), float64(len(sent))/elapsed.Seconds(), late.Load(),
		q(0.5).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond), hub.Stats().SlowDisconnects)
	b.ReportMetric(perConn, "heap+stack-B/conn")
	b.ReportMetric(perConnRSS, "rss-B/conn")
	b.ReportMetric(float64(q(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
}

// TestFanoutClients is BenchmarkFanout's child process; it skips unless
// the benchmark started it.
func TestFanoutClients(t *testing.T) {
	url := os.Getenv("TASKQUEUE_BENCH_CHILD_URL")
	if url == "" {
		t.Skip("run by BenchmarkFanout only")
	}
	n := envInt("TASKQUEUE_BENCH_CLIENTS", 10000)
	tok := os.Getenv("TASKQUEUE_BENCH_CHILD_TOKEN")
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	var outMu sync.Mutex
	emit := func(s string) {
		outMu.Lock()
		_, _ = out.WriteString(s) // a bufio.Writer's error comes back from Flush
		_ = out.WriteByte('\n')
		outMu.Unlock()
	}
	go func() {
		for range time.Tick(20 * time.Millisecond) {
			outMu.Lock()
			out.Flush()
			outMu.Unlock()
		}
	}()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var subscribed atomic.Int64
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			conn, _, err := websocket.Dial(ctx, url+"?access_token="+tok, nil)
			cancel()
			if err != nil {
				<-sem
				t.Errorf("dial %d: %v", i, err)
				return
			}
			conn.SetReadLimit(1 << 20)
			b, _ := json.Marshal(map[string]string{"type": "subscribe", "playerId": fmt.Sprintf("p%d", i)})
			if err := conn.Write(context.Background(), websocket.MessageText, b); err != nil {
				<-sem
				t.Errorf("subscribe %d: %v", i, err)
				return
			}
			// reset, subscribed
			for k := 0; k < 2; k++ {
				if _, _, err := conn.Read(context.Background()); err != nil {
					<-sem
					t.Errorf("read %d: %v", i, err)
					return
				}
			}
			subscribed.Add(1)
			<-sem
			for {
				_, r, err := conn.Reader(context.Background())
				if err != nil {
					return
				}
				b, _ := io.ReadAll(r)
				at := time.Now().UnixNano()
				var m struct {
					Position string `json:"position"`
				}
				if json.Unmarshal(b, &m) == nil {
					emit(m.Position + " " + strconv.FormatInt(at, 10))
				}
			}
		}()
	}
	testenv.WaitFor(t, "every socket", func() bool { return subscribed.Load() == int64(n) })
	emit("ready")
	wg.Wait()
}

type mem struct{ heapStack, heap, stack, rss uint64 }

func memNow() mem {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := mem{heapStack: ms.HeapInuse + ms.StackInuse, heap: ms.HeapInuse, stack: ms.StackInuse}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				m.rss = kb * 1024
			}
		}
	}
	return m
}

func mib(b uint64) float64 { return float64(int64(b)) / (1 << 20) }

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

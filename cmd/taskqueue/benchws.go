package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/taskqueue/taskqueue/auth"
)

const benchWSHelp = `bench ws runs taskqueue's WebSocket fanout and Centrifugo side by side, in the
same rounds, on this machine: for each round and each server it starts the
server (taskqueue serve on a fresh SQLite data directory; Centrifugo with
history and recovery on for the "queue" namespace), dials N idle subscribed
clients (one player or channel each, from --sources loopback addresses
127.0.0.1…), reads the server process's resident memory (VmRSS) before the
dial and after --idle, then sends --rate events per second for --duration,
each to one client (taskqueue: POST /api/queue/{player}/stop or /start, one
event; Centrifugo: POST /api/publish of a payload the size of taskqueue's
event message), and reports the latency from just before the request to the
client's receipt, the request's own answer, and for taskqueue the time from
the command's decision (the event's occurredAt, taken just before its
append, truncated to the millisecond: up to 1 ms too long) to the client's
receipt: the append, its commit and the fanout.
scripts/bench-ws.sh installs Centrifugo and runs it.

  taskqueue bench ws --centrifugo PATH [--rounds 3] [--clients 10000]
      [--rate 1000] [--duration 20s] [--idle 10s] [--sources 4]
`

type wsBenchFlags struct {
	centrifugo string
	rounds     int
	clients    int
	rate       int
	duration   time.Duration
	idle       time.Duration
	sources    int
	dir        string
	only       string
}

// benchWS is `taskqueue bench ws`.
func benchWS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench ws", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchWSHelp); fs.PrintDefaults() }
	var f wsBenchFlags
	fs.StringVar(&f.centrifugo, "centrifugo", "", "path of the centrifugo binary (empty: taskqueue only)")
	fs.IntVar(&f.rounds, "rounds", 3, "rounds (each runs every server once)")
	fs.IntVar(&f.clients, "clients", 10000, "idle subscribed clients per server")
	fs.IntVar(&f.rate, "rate", 1000, "events per second during the latency phase")
	fs.DurationVar(&f.duration, "duration", 20*time.Second, "length of the latency phase")
	fs.DurationVar(&f.idle, "idle", 10*time.Second, "wait after the dial before reading the server's memory")
	fs.IntVar(&f.sources, "sources", 4, "loopback source addresses to dial from (127.0.0.1 …)")
	fs.StringVar(&f.dir, "dir", "", "work directory (default: a temporary one)")
	fs.StringVar(&f.only, "only", "", "run only this server: taskqueue or centrifugo")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &usageError{err.Error()}
	}
	switch {
	case f.rounds < 1 || f.clients < 1 || f.rate < 1 || f.duration <= 0 || f.sources < 1 || f.sources > 250:
		return &usageError{"bench ws: --rounds, --clients, --rate, --duration must be positive, --sources 1-250"}
	case f.only != "" && f.only != "taskqueue" && f.only != "centrifugo":
		return &usageError{"bench ws: --only is taskqueue or centrifugo"}
	case f.only == "centrifugo" && f.centrifugo == "":
		return &usageError{"bench ws: --only centrifugo needs --centrifugo"}
	}
	// Every socket costs a descriptor here and one in the server: raise
	// the soft limit to the hard one (children inherit it).
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		if uint64(f.clients)+200 > lim.Cur {
			return fmt.Errorf("bench ws: %d clients need more than the file limit of %d (one process holds all clients, the server all sockets; raise the hard limit: ulimit -Hn)", f.clients, lim.Cur)
		}
	}
	if f.dir == "" {
		d, err := os.MkdirTemp("", "taskqueue-bench-ws-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		f.dir = d
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# bench ws %s: %d clients from %d source addresses, %d events/s for %s, memory after %s idle; %d CPUs\n",
		time.Now().UTC().Format(time.RFC3339), f.clients, f.sources, f.rate, f.duration, f.idle, numCPU())
	fmt.Fprintf(stdout, "%-5s %-10s %8s %8s %8s %8s %9s %8s %8s %8s %8s %-15s %-17s %s\n",
		"round", "server", "rss0-MiB", "rss-MiB", "KiB/conn", "events", "rate/s", "p50-ms", "p99-ms", "max-ms", "lost", "load (1 5 15)  ", "answer p50/p99-ms", "decided→client p50/p99-ms")
	tq := &taskqueueTarget{self: self}
	if err := tq.mint(f.clients); err != nil {
		return err
	}
	cf := &centrifugoTarget{bin: f.centrifugo, size: func() int {
		if n := tq.msgSize.Load(); n > 0 {
			return int(n)
		}
		return 600
	}}
	var targets []wsTarget
	if f.only != "centrifugo" {
		targets = append(targets, tq)
	}
	if f.centrifugo != "" && f.only != "taskqueue" {
		targets = append(targets, cf)
	}
	for round := 1; round <= f.rounds; round++ {
		var pair [2]*wsResult
		for _, t := range targets {
			dir := filepath.Join(f.dir, fmt.Sprintf("%s-%d", t.name(), round))
			res, err := runWSTarget(ctx, t, f, dir, stderr)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, t.name(), err)
			}
			res.print(stdout, round, t.name())
			if t.name() == "centrifugo" {
				pair[1] = res
			} else {
				pair[0] = res
			}
		}
		if pair[0] != nil && pair[1] != nil {
			fmt.Fprintf(stdout, "%-5d ratio      taskqueue÷centrifugo: memory per connection %.2f, p50 %.2f, p99 %.2f, rate %.2f\n", round,
				pair[0].perConn()/pair[1].perConn(), ratio(pair[0].q(0.5), pair[1].q(0.5)), ratio(pair[0].q(0.99), pair[1].q(0.99)), pair[0].rate/pair[1].rate)
		}
	}
	if n := tq.msgSize.Load(); n > 0 {
		fmt.Fprintf(stdout, "# taskqueue's event message: %d bytes; Centrifugo's publication data: as long\n", n)
	}
	return nil
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return max(1, strings.Count(string(b), "processor\t:"))
}

// wsTarget is one server under test.
type wsTarget interface {
	name() string
	// start starts the server in dir and returns once it serves.
	start(ctx context.Context, dir string, stderr io.Writer) (*exec.Cmd, error)
	// dial opens and subscribes client i.
	dial(ctx context.Context, client *http.Client, i int) (*websocket.Conn, error)
	// events counts the event deliveries in a frame, answering the
	// server's application-level pings on conn; decided is when the
	// server decided the frame's event (zero when the frame does not say).
	events(ctx context.Context, conn *websocket.Conn, frame []byte) (n int, decided time.Time)
	// send makes one event for client i.
	send(ctx context.Context, client *http.Client, i int) error
}

type wsResult struct {
	rss0, rss  uint64
	clients    int
	sent, lost int
	rate       float64
	lat        []time.Duration // request sent → client received
	ack        []time.Duration // request sent → response received
	decided    []time.Duration // the event decided (before its append) → client received
	load       string
}

func (r *wsResult) perConn() float64 { return float64(r.rss-r.rss0) / float64(r.clients) / 1024 }

func (r *wsResult) q(f float64) time.Duration { return quantile(r.lat, f) }

func quantile(xs []time.Duration, f float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	return xs[min(len(xs)-1, int(f*float64(len(xs))))]
}

func (r *wsResult) print(w io.Writer, round int, name string) {
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64) }
	decided := "-"
	if len(r.decided) > 0 {
		decided = ms(quantile(r.decided, 0.5)) + "/" + ms(quantile(r.decided, 0.99))
	}
	fmt.Fprintf(w, "%-5d %-10s %8.1f %8.1f %8.1f %8d %9.0f %8s %8s %8s %8d %-15s %-17s %s\n", round, name,
		float64(r.rss0)/(1<<20), float64(r.rss)/(1<<20), r.perConn(), r.sent, r.rate, ms(r.q(0.5)), ms(r.q(0.99)), ms(r.q(1)), r.lost, r.load,
		ms(quantile(r.ack, 0.5))+"/"+ms(quantile(r.ack, 0.99)), decided)
}

// runWSTarget runs one server through one round.
func runWSTarget(ctx context.Context, t wsTarget, f wsBenchFlags, dir string, stderr io.Writer) (*wsResult, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cmd, err := t.start(ctx, dir, stderr)
	if err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(2 * time.Second)
	res := &wsResult{clients: f.clients}
	if res.rss0, err = processRSS(cmd.Process.Pid); err != nil {
		return nil, err
	}

	// One HTTP client per source address for the upgrades; sends use
	// their own pooled client.
	dialers := make([]*http.Client, f.sources)
	for s := range dialers {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+s))}}
		dialers[s] = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	sender := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}, Timeout: 30 * time.Second}

	recv := make([][]int64, f.clients) // receipt times, by client
	var recvMu sync.Mutex
	var measuring atomic.Bool      // the latency phase has begun
	var decidedLat []time.Duration // under recvMu
	conns := make([]*websocket.Conn, f.clients)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var readers sync.WaitGroup
	defer readers.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.CloseNow()
			}
		}
	}()
	sem := make(chan struct{}, 64)
	var dialErr atomic.Value
	var dialWG sync.WaitGroup
	start := time.Now()
	for i := range f.clients {
		sem <- struct{}{}
		dialWG.Add(1)
		go func() {
			defer func() { <-sem; dialWG.Done() }()
			dctx, dcancel := context.WithTimeout(runCtx, time.Minute)
			conn, err := t.dial(dctx, dialers[i%f.sources], i)
			dcancel()
			if err != nil {
				dialErr.CompareAndSwap(nil, fmt.Errorf("dial client %d: %w", i, err))
				return
			}
			conn.SetReadLimit(1 << 20)
			conns[i] = conn
			readers.Add(1)
			go func() {
				defer readers.Done()
				for {
					_, b, err := conn.Read(runCtx)
					if err != nil {
						return
					}
					at := time.Now()
					if n, decided := t.events(runCtx, conn, b); n > 0 {
						recvMu.Lock()
						for range n {
							recv[i] = append(recv[i], at.UnixNano())
						}
						if !decided.IsZero() && measuring.Load() {
							decidedLat = append(decidedLat, at.Sub(decided))
						}
						recvMu.Unlock()
					}
				}
			}()
		}()
	}
	dialWG.Wait()
	if err, _ := dialErr.Load().(error); err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "%s: %d clients subscribed in %s\n", t.name(), f.clients, time.Since(start).Round(time.Millisecond))
	time.Sleep(f.idle)
	if res.rss, err = processRSS(cmd.Process.Pid); err != nil {
		return nil, err
	}

	// The latency phase: events on a fixed schedule, spread over the
	// clients, from 16 producers.
	total := int(float64(f.rate) * f.duration.Seconds())
	sent := make([][]int64, f.clients)
	var sentMu sync.Mutex
	var sendErrs atomic.Int64
	var firstErr atomic.Value
	const producers = 32
	var wg sync.WaitGroup
	measuring.Store(true)
	begin := time.Now()
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := p; k < total; k += producers {
				if d := time.Until(begin.Add(time.Duration(k) * time.Second / time.Duration(f.rate))); d > 0 {
					time.Sleep(d)
				}
				i := (k * 7919) % f.clients
				t0 := time.Now().UnixNano()
				if err := t.send(runCtx, sender, i); err != nil {
					sendErrs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				t1 := time.Now().UnixNano()
				sentMu.Lock()
				sent[i] = append(sent[i], t0)
				res.ack = append(res.ack, time.Duration(t1-t0))
				sentMu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	if n := sendErrs.Load(); n > 0 {
		fmt.Fprintf(stderr, "%s: %d sends failed, first: %v\n", t.name(), n, firstErr.Load())
	}
	// Wait for the stragglers, at most 10 s.
	count := func(xs [][]int64) (n int) {
		for _, x := range xs {
			n += len(x)
		}
		return n
	}
	res.sent = count(sent)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		recvMu.Lock()
		n := count(recv)
		recvMu.Unlock()
		if n >= res.sent {
			break
		}
	}
	res.rate = float64(res.sent) / elapsed.Seconds()
	recvMu.Lock()
	for i := range sent {
		// The k-th event to a client answers the k-th send to it: the
		// sends to one client are seconds apart.
		for k, t0 := range sent[i] {
			if k < len(recv[i]) {
				res.lat = append(res.lat, time.Duration(recv[i][k]-t0))
			} else {
				res.lost++
			}
		}
	}
	res.decided = slices.Clone(decidedLat)
	recvMu.Unlock()
	slices.Sort(res.lat)
	slices.Sort(res.ack)
	slices.Sort(res.decided)
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return res, nil
}

// processRSS reads VmRSS of process pid.
func processRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// freeAddr returns a free loopback TCP address.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitHTTP polls url until it answers 200.
func waitHTTP(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer 200: %w", url, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

const benchSecret = "bench-ws-secret-0123456789abcdef0123456789"

// taskqueueTarget is `taskqueue serve` on a fresh SQLite data directory,
// rate limits off.
type taskqueueTarget struct {
	self    string
	addr    string
	tokens  []string
	stopped []atomic.Bool
	msgSize atomic.Int64
}

func (t *taskqueueTarget) name() string { return "taskqueue" }

func (t *taskqueueTarget) start(ctx context.Context, dir string, stderr io.Writer) (*exec.Cmd, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	t.addr = addr
	t.stopped = make([]atomic.Bool, len(t.tokens))
	cmd := exec.CommandContext(ctx, t.self, "serve")
	cmd.Env = append(os.Environ(),
		"TASKQUEUE_ADDR="+addr, "TASKQUEUE_DATA_DIR="+dir, "TASKQUEUE_JWT_SECRET="+benchSecret,
		"TASKQUEUE_RATE_LIMIT_PLAYER=-1", "TASKQUEUE_RATE_LIMIT_IP=-1", "TASKQUEUE_LOG_LEVEL=warn")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, "http://"+addr+"/readyz"); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	return cmd, nil
}

// mint makes the players' tokens (signed with the server's secret).
func (t *taskqueueTarget) mint(clients int) error {
	tokens, err := auth.NewTokens(auth.TokensConfig{Secret: []byte(benchSecret)})
	if err != nil {
		return err
	}
	t.tokens = make([]string, clients)
	for i := range t.tokens {
		if t.tokens[i], _, err = tokens.Mint(benchWSPlayer(i), auth.RolePlayer, 24*time.Hour); err != nil {
			return err
		}
	}
	return nil
}

func (t *taskqueueTarget) dial(ctx context.Context, client *http.Client, i int) (*websocket.Conn, error) {
	conn, _, err := websocket.Dial(ctx, "ws://"+t.addr+"/api/ws", &websocket.DialOptions{
		HTTPClient: client, HTTPHeader: http.Header{"Authorization": {"Bearer " + t.tokens[i]}}})
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(map[string]string{"type": "subscribe", "playerId": benchWSPlayer(i)})
	if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
		return nil, err
	}
	for { // reset, then subscribed
		_, b, err := conn.Read(ctx)
		if err != nil {
			return nil, err
		}
		if bytes.Contains(b, []byte(`"type":"subscribed"`)) {
			return conn, nil
		}
	}
}

func (t *taskqueueTarget) events(_ context.Context, _ *websocket.Conn, frame []byte) (int, time.Time) {
	if !bytes.HasPrefix(frame, []byte(`{"type":"event"`)) {
		return 0, time.Time{}
	}
	t.msgSize.Store(int64(len(frame)))
	return 1, occurredAt(frame)
}

// occurredAt reads the event's occurredAt from an event message (its
// command's decision time, taken just before the append), or zero.
func occurredAt(frame []byte) time.Time {
	const key = `"occurredAt":"`
	_, rest, ok := bytes.Cut(frame, []byte(key))
	if !ok {
		return time.Time{}
	}
	v, _, ok := bytes.Cut(rest, []byte(`"`))
	if !ok {
		return time.Time{}
	}
	at, _ := time.Parse(time.RFC3339Nano, string(v))
	return at
}

func (t *taskqueueTarget) send(ctx context.Context, client *http.Client, i int) error {
	op := "stop"
	if t.stopped[i].Load() {
		op = "start"
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+t.addr+"/api/queue/"+benchWSPlayer(i)+"/"+op, nil)
	req.Header.Set("Authorization", "Bearer "+t.tokens[i])
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s %s: %s", benchWSPlayer(i), op, resp.Status)
	}
	t.stopped[i].Store(op == "stop")
	return nil
}

func benchWSPlayer(i int) string { return "p" + strconv.Itoa(i) }

// centrifugoTarget is Centrifugo v6 with the memory broker, history and
// recovery on for the "queue" namespace (every client subscribes to
// queue:p{i}), and its documented settings for many idle connections (a
// write buffer pool, a small read buffer).
type centrifugoTarget struct {
	bin     string
	addr    string
	size    func() int // of the publication's data
	payload []byte
}

func (t *centrifugoTarget) name() string { return "centrifugo" }

const centrifugoAPIKey = "bench-ws-api-key"

func (t *centrifugoTarget) start(ctx context.Context, dir string, stderr io.Writer) (*exec.Cmd, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	t.addr = addr
	// A JSON string as long as taskqueue's event message.
	t.payload = []byte(`{"pad":"` + strings.Repeat("x", max(0, t.size()-10)) + `"}`)
	_, port, _ := net.SplitHostPort(addr)
	cfg := map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": port},
		"log":         map[string]any{"level": "error"},
		"client": map[string]any{
			"token":           map[string]any{"hmac_secret_key": benchSecret},
			"allowed_origins": []string{"*"},
		},
		"http_api":  map[string]any{"key": centrifugoAPIKey},
		"websocket": map[string]any{"use_write_buffer_pool": true, "read_buffer_size": 1024},
		"channel": map[string]any{"namespaces": []any{map[string]any{
			"name": "queue", "history_size": 100, "history_ttl": "300s", "force_recovery": true,
			"allow_subscribe_for_client": true,
		}}},
		"usage_stats": map[string]any{"disabled": true},
		"health":      map[string]any{"enabled": true},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, t.bin, "-c", path)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, "http://"+addr+"/health"); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	return cmd, nil
}

func (t *centrifugoTarget) dial(ctx context.Context, client *http.Client, i int) (*websocket.Conn, error) {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": benchWSPlayer(i), "exp": time.Now().Add(24 * time.Hour).Unix(),
	}).SignedString([]byte(benchSecret))
	if err != nil {
		return nil, err
	}
	conn, _, err := websocket.Dial(ctx, "ws://"+t.addr+"/connection/websocket", &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		return nil, err
	}
	cmds := []string{
		fmt.Sprintf(`{"id":1,"connect":{"token":%q,"name":"bench"}}`, tok),
		fmt.Sprintf(`{"id":2,"subscribe":{"channel":"queue:%s"}}`, benchWSPlayer(i)),
	}
	for k, c := range cmds {
		if err := conn.Write(ctx, websocket.MessageText, []byte(c)); err != nil {
			return nil, err
		}
		for {
			_, b, err := conn.Read(ctx)
			if err != nil {
				return nil, err
			}
			if bytes.Contains(b, []byte(`"error"`)) {
				return nil, fmt.Errorf("centrifugo: %s", b)
			}
			if bytes.Contains(b, []byte(fmt.Sprintf(`"id":%d`, k+1))) {
				break
			}
		}
	}
	return conn, nil
}

func (t *centrifugoTarget) events(ctx context.Context, conn *websocket.Conn, frame []byte) (int, time.Time) {
	n := 0
	for _, line := range bytes.Split(frame, []byte("\n")) {
		switch {
		case bytes.Equal(bytes.TrimSpace(line), []byte("{}")):
			_ = conn.Write(ctx, websocket.MessageText, []byte("{}")) // pong
		case bytes.Contains(line, []byte(`"pub"`)):
			n++
		}
	}
	return n, time.Time{}
}

func (t *centrifugoTarget) send(ctx context.Context, client *http.Client, i int) error {
	body := fmt.Sprintf(`{"channel":"queue:%s","data":%s}`, benchWSPlayer(i), t.payload)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+t.addr+"/api/publish", strings.NewReader(body))
	req.Header.Set("X-API-Key", centrifugoAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || bytes.Contains(b, []byte(`"error"`)) {
		return fmt.Errorf("publish: %s %s", resp.Status, b)
	}
	return nil
}

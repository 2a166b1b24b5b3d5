package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/auth"
)

const soakHelp = `soak runs a steady, player-like load against a running server for a long
time and samples its memory, to tell a leak from a cache filling up.

Each of --players simulated players at a time plays a session: it signs in
(a token of its own, signed with the configured secret, so no player
reaches the per-player rate limit), may open a WebSocket on its queue,
enqueues --chains chains of 2-3 short tasks (each command followed by a
GET ?minVersion=<its ETag>, now and then a stop and start, a removal or a
reorder), waits for each chain to finish, then leaves; the next session is
a new player's with probability --new, else a returning one's. The server's
processor completes the repetitions meanwhile.

Every --sample it reads the server's /metrics (heap in use and allocated,
RSS, goroutines, series, commands handled) and, with --debug-url (the
server's TASKQUEUE_DEBUG_ADDR), the heap after a GC; it prints a row and
appends it to --out/samples.tsv. At each --profile-at it saves the heap
profile (after a GC) as --out/heap-<time>.pb.gz (heap-30m.pb.gz), to
compare with go tool pprof -base. The per-address rate limit counts every player of
the soak as one address: run the server with TASKQUEUE_RATE_LIMIT_IP=-1.`

// soakFlags are the flags of `soak` beside the configuration's (which give
// the JWT secret to sign the players' tokens with).
type soakFlags struct {
	url       string
	debugURL  string
	out       string
	duration  time.Duration
	sample    time.Duration
	profileAt []time.Duration
	players   int
	newShare  float64
	wsShare   float64
	chains    int
	prefix    string
}

func soak(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	sf := soakFlags{}
	profileAt := "5m,30m,60m"
	fs.StringVar(&sf.url, "url", "http://localhost:8080", "base URL of the server")
	fs.StringVar(&sf.debugURL, "debug-url", "", "base URL of the server's profiler (TASKQUEUE_DEBUG_ADDR), e.g. http://127.0.0.1:6060; empty: no heap after GC, no profiles")
	fs.StringVar(&sf.out, "out", "", "directory for samples.tsv and the heap profiles (default: soak-<time> in the working directory)")
	fs.DurationVar(&sf.duration, "duration", time.Hour, "how long to run")
	fs.DurationVar(&sf.sample, "sample", 30*time.Second, "time between memory samples")
	fs.StringVar(&profileAt, "profile-at", profileAt, "comma-separated times into the run at which to save a heap profile (with --debug-url)")
	fs.IntVar(&sf.players, "players", 100, "players playing at a time")
	fs.Float64Var(&sf.newShare, "new", 0.5, "share of sessions played by a player never seen before (0-1)")
	fs.Float64Var(&sf.wsShare, "ws", 0.3, "share of sessions that watch their queue on a WebSocket (0-1)")
	fs.IntVar(&sf.chains, "chains", 2, "chains of tasks per session")
	fs.StringVar(&sf.prefix, "player-prefix", "", "prefix of the players' IDs (default: soak-<time>-)")
	cfg, err := parseCommandLine(fs, soakHelp, args, stderr, getenv)
	if err != nil {
		return err
	}
	for _, s := range strings.Split(profileAt, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return &usageError{fmt.Sprintf("--profile-at: %q is not a positive duration like 5m", s)}
		}
		sf.profileAt = append(sf.profileAt, d)
	}
	switch {
	case fs.NArg() > 0:
		return &usageError{fmt.Sprintf("soak takes no arguments, got %q", fs.Args())}
	case sf.duration <= 0 || sf.sample <= 0:
		return &usageError{"--duration and --sample must be positive"}
	case sf.players < 1 || sf.players > 10000:
		return &usageError{fmt.Sprintf("--players %d is not between 1 and 10000", sf.players)}
	case sf.newShare < 0 || sf.newShare > 1 || sf.wsShare < 0 || sf.wsShare > 1:
		return &usageError{"--new and --ws are shares between 0 and 1"}
	case sf.chains < 1:
		return &usageError{"--chains must be positive"}
	}
	if sf.prefix == "" {
		sf.prefix = fmt.Sprintf("soak-%d-", time.Now().Unix())
	}
	if sf.out == "" {
		sf.out = fmt.Sprintf("soak-%s", time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(sf.out, 0o755); err != nil {
		return fmt.Errorf("create --out: %w", err)
	}
	tokens, err := app.NewTokens(cfg.WithDefaults())
	if err != nil {
		return err
	}
	s := &soaker{
		flags: sf, stderr: stderr,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: sf.players + 10, MaxIdleConnsPerHost: sf.players + 10, IdleConnTimeout: time.Minute,
		}},
		mint: func(player string) (string, error) {
			tok, _, err := tokens.Mint(player, auth.RolePlayer, sf.duration+time.Hour)
			return tok, err
		},
		statuses: map[string]int{},
	}
	resp, err := s.client.Get(strings.TrimRight(sf.url, "/") + "/healthz")
	if err != nil {
		return fmt.Errorf("reach %s: %w", sf.url, err)
	}
	resp.Body.Close()
	return s.run(ctx, stdout)
}

// soaker is one soak run.
type soaker struct {
	flags  soakFlags
	stderr io.Writer
	client *http.Client
	mint   func(player string) (string, error)

	started  time.Time
	mu       sync.Mutex
	seen     []string       // players who played, for returning sessions
	statuses map[string]int // "POST tasks 201" → count
	errs     int
	lastErr  string
	sessions atomic.Int64
	wsMsgs   atomic.Int64
}

func (s *soaker) run(ctx context.Context, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, s.flags.duration)
	defer cancel()
	s.started = time.Now()
	tsv, err := os.Create(filepath.Join(s.flags.out, "samples.tsv"))
	if err != nil {
		return err
	}
	defer tsv.Close()
	var wg sync.WaitGroup
	for i := range s.flags.players {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the first sessions over the first sample interval.
			if !sleepCtx(ctx, time.Duration(rand.Int64N(int64(s.flags.sample)))) {
				return
			}
			for n := 0; ctx.Err() == nil; n++ {
				s.session(ctx, s.player(i, n))
			}
		}()
	}
	s.sampleLoop(ctx, stdout, tsv)
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(stdout, "sessions %d, distinct players %d, WebSocket messages %d, transport errors %d\n",
		s.sessions.Load(), len(s.seen), s.wsMsgs.Load(), s.errs)
	fmt.Fprintf(stdout, "answers: %v\n", s.statuses)
	if s.lastErr != "" {
		fmt.Fprintf(stdout, "last error: %s\n", s.lastErr)
	}
	if n := s.statuses["POST tasks 429"] + s.statuses["POST stop 429"] + s.statuses["POST start 429"]; n > 0 {
		fmt.Fprintf(stdout, "rate limited: %d commands answered 429 (raise TASKQUEUE_RATE_LIMIT_IP / _PLAYER)\n", n)
	}
	fmt.Fprintf(stdout, "samples and profiles in %s\n", s.flags.out)
	return nil
}

// player picks who plays slot's n-th session: a new player, or one seen.
func (s *soaker) player(slot, n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) > 0 && rand.Float64() >= s.flags.newShare {
		return s.seen[rand.IntN(len(s.seen))]
	}
	p := fmt.Sprintf("%s%d-%d", s.flags.prefix, slot, n)
	s.seen = append(s.seen, p)
	return p
}

// chains are the task chains a session picks from: level-1 tasks of the
// embedded catalog, short (2-4 s a repetition), later ones using what
// earlier ones produce (a chain whose inputs run short fails its task,
// which players do too).
var soakChains = [][]string{
	{"chop-wood", "chop-wood", "saw-planks"},
	{"mine-copper", "mine-tin"},
	{"chop-wood", "saw-planks"},
	{"mine-tin", "mine-copper", "chop-wood"},
}

// session plays one player's session.
func (s *soaker) session(ctx context.Context, player string) {
	s.sessions.Add(1)
	tok, err := s.mint(player)
	if err != nil {
		s.fail(err)
		return
	}
	if rand.Float64() < s.flags.wsShare {
		wsCtx, stop := context.WithCancel(ctx)
		done := s.watch(wsCtx, player, tok)
		defer func() { stop(); <-done }()
	}
	c := playerClient{s: s, player: player, token: tok}
	if _, _, ok := c.do(ctx, "GET queue", http.MethodGet, "", nil, nil); !ok {
		return
	}
	for range s.flags.chains {
		chain := soakChains[rand.IntN(len(soakChains))]
		var ids []string
		for _, typ := range chain {
			body := fmt.Sprintf(`{"type":%q,"count":%d}`, typ, 1+rand.IntN(2))
			var task struct {
				TaskID string `json:"taskId"`
			}
			v, _, ok := c.do(ctx, "POST tasks", http.MethodPost, "/tasks", []byte(body), &task)
			if !ok {
				return
			}
			ids = append(ids, task.TaskID)
			c.readAtLeast(ctx, v)
		}
		switch r := rand.IntN(20); {
		case r == 0: // stop, look, start again
			if v, _, ok := c.do(ctx, "POST stop", http.MethodPost, "/stop", nil, nil); ok {
				c.readAtLeast(ctx, v)
			}
			if v, _, ok := c.do(ctx, "POST start", http.MethodPost, "/start", nil, nil); ok {
				c.readAtLeast(ctx, v)
			}
		case r == 1 && len(ids) > 1: // change one's mind about the last task
			if v, _, ok := c.do(ctx, "DELETE task", http.MethodDelete, "/tasks/"+ids[len(ids)-1], nil, nil); ok {
				c.readAtLeast(ctx, v)
			}
		case r == 2: // put the waiting tasks in reverse order
			var q struct {
				Tasks []struct {
					TaskID string `json:"taskId"`
				} `json:"tasks"`
				Repetition *struct{} `json:"repetition"`
			}
			if _, _, ok := c.do(ctx, "GET queue", http.MethodGet, "", nil, &q); ok && len(q.Tasks) > 2 {
				var order []string
				for i := len(q.Tasks) - 1; i >= 1; i-- {
					order = append(order, q.Tasks[i].TaskID)
				}
				if q.Repetition == nil {
					order = append(order, q.Tasks[0].TaskID)
				}
				b, _ := json.Marshal(map[string]any{"order": order})
				if v, _, ok := c.do(ctx, "PUT reorder", http.MethodPut, "/reorder", b, nil); ok {
					c.readAtLeast(ctx, v)
				}
			}
		}
		if !c.waitIdle(ctx) {
			return
		}
	}
}

// playerClient sends one player's requests.
type playerClient struct {
	s      *soaker
	player string
	token  string
}

// do sends one request to /api/queue/{player}+path and decodes a 2xx body
// into out. It returns the ETag's version and whether to go on.
func (c playerClient) do(ctx context.Context, name, method, path string, body []byte, out any) (version int64, status int, ok bool) {
	req, err := http.NewRequestWithContext(ctx, method,
		strings.TrimRight(c.s.flags.url, "/")+"/api/queue/"+c.player+path, bytes.NewReader(body))
	if err != nil {
		c.s.fail(err)
		return 0, 0, false
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if method != http.MethodGet {
		req.Header.Set("Idempotency-Key", uuid.NewString())
	}
	resp, err := c.s.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			c.s.fail(err)
		}
		return 0, 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	c.s.count(fmt.Sprintf("%s %d", name, resp.StatusCode))
	if resp.StatusCode/100 != 2 {
		if resp.StatusCode >= 500 {
			c.s.fail(fmt.Errorf("%s %s: %d %s", method, req.URL.Path, resp.StatusCode, b))
		}
		// A refused command (a full queue, a task already gone) is part
		// of playing; a 5xx ends the session.
		return 0, resp.StatusCode, resp.StatusCode < 500
	}
	if out != nil {
		_ = json.Unmarshal(b, out)
	}
	version, _ = strconv.ParseInt(strings.Trim(strings.TrimPrefix(resp.Header.Get("ETag"), "W/"), `"`), 10, 64)
	return version, resp.StatusCode, true
}

// readAtLeast reads the queue at least at version v, as a client does
// after its own write.
func (c playerClient) readAtLeast(ctx context.Context, v int64) {
	if v > 0 {
		c.do(ctx, "GET queue?minVersion", http.MethodGet, "?minVersion="+strconv.FormatInt(v, 10), nil, nil)
	}
}

// waitIdle polls the queue every 2-4 s until it has no task left (or
// a minute passed), as a player glancing at the screen.
func (c playerClient) waitIdle(ctx context.Context) bool {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if !sleepCtx(ctx, 2*time.Second+time.Duration(rand.Int64N(int64(2*time.Second)))) {
			return false
		}
		var q struct {
			Tasks []json.RawMessage `json:"tasks"`
		}
		if _, _, ok := c.do(ctx, "GET queue", http.MethodGet, "", nil, &q); !ok {
			return false
		}
		if len(q.Tasks) == 0 {
			return true
		}
	}
	return true
}

// watch subscribes to player's queue on a WebSocket and reads its
// messages until ctx ends; done closes when it stopped.
func (s *soaker) watch(ctx context.Context, player, token string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		u := "ws" + strings.TrimPrefix(strings.TrimRight(s.flags.url, "/"), "http") + "/api/ws"
		conn, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
		})
		if err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("websocket of %s: %w", player, err))
			}
			return
		}
		defer conn.CloseNow()
		sub, _ := json.Marshal(map[string]string{"type": "subscribe", "playerId": player})
		if err := conn.Write(ctx, websocket.MessageText, sub); err != nil {
			return
		}
		for {
			_, msg, err := conn.Read(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.fail(fmt.Errorf("websocket of %s: %w", player, err))
				}
				s.count("WS closed")
				_ = conn.Close(websocket.StatusNormalClosure, "")
				return
			}
			s.wsMsgs.Add(1)
			var m struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(msg, &m) == nil && m.Type != "event" {
				s.count("WS " + m.Type)
			}
		}
	}()
	return done
}

func (s *soaker) count(key string) {
	s.mu.Lock()
	s.statuses[key]++
	s.mu.Unlock()
}

func (s *soaker) fail(err error) {
	s.mu.Lock()
	s.errs++
	s.lastErr = err.Error()
	n := s.errs
	s.mu.Unlock()
	if n <= 20 {
		fmt.Fprintf(s.stderr, "soak: %v\n", err)
	}
}

// memSample is one row of samples.tsv.
type memSample struct {
	at                   time.Duration
	heapInuse, heapAlloc float64 // /metrics (whenever the GC last left them)
	liveInuse, liveAlloc float64 // after a GC (--debug-url), else 0
	rss                  float64
	goroutines           float64
	series               int     // lines of /metrics that are samples
	commands             float64 // taskqueue_commands_total, summed (the API's commands)
	repetitions          float64 // taskqueue_repetitions_total, summed (the processor's completions)
	cpu                  float64 // process_cpu_seconds_total
	wsConns              float64
	load1                string
	players              int
}

func (s *soaker) sampleLoop(ctx context.Context, stdout io.Writer, tsv io.Writer) {
	header := "minute\theap_inuse_MB\theap_alloc_MB\tlive_inuse_MB\tlive_alloc_MB\trss_MB\tgoroutines\tseries\tcommands_per_s\tcompletions_per_s\tcpu_pct\tws_conns\tplayers_seen\tload1"
	fmt.Fprintln(stdout, header)
	fmt.Fprintln(tsv, header)
	profiles := append([]time.Duration(nil), s.flags.profileAt...)
	var prev memSample
	tick := time.NewTicker(s.flags.sample)
	defer tick.Stop()
	take := func(ctx context.Context, last bool) {
		m, err := s.sampleOnce(ctx)
		if err != nil {
			s.fail(fmt.Errorf("sample: %w", err))
			return
		}
		row := m.row(prev)
		prev = m
		fmt.Fprintln(stdout, row)
		fmt.Fprintln(tsv, row)
		for len(profiles) > 0 && (last || time.Since(s.started) >= profiles[0]-s.flags.sample/2) {
			s.saveProfile(ctx, profiles[0])
			profiles = profiles[1:]
		}
	}
	take(ctx, false)
	for {
		select {
		case <-ctx.Done():
			// The last sample, and the profiles not taken yet.
			end, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			take(end, true)
			cancel()
			return
		case <-tick.C:
			take(ctx, false)
		}
	}
}

// row formats m as a line of samples.tsv; rates are since prev.
func (m memSample) row(prev memSample) string {
	mb := func(b float64) string { return fmt.Sprintf("%.1f", b/(1<<20)) }
	rate := func(now, before float64) string {
		if prev.at == 0 || m.at <= prev.at {
			return ""
		}
		return fmt.Sprintf("%.0f", (now-before)/(m.at-prev.at).Seconds())
	}
	return strings.Join([]string{
		fmt.Sprintf("%.1f", m.at.Minutes()), mb(m.heapInuse), mb(m.heapAlloc), mb(m.liveInuse), mb(m.liveAlloc),
		mb(m.rss), fmt.Sprint(m.goroutines), fmt.Sprint(m.series),
		rate(m.commands, prev.commands), rate(m.repetitions, prev.repetitions), rate(100*m.cpu, 100*prev.cpu),
		fmt.Sprint(m.wsConns), fmt.Sprint(m.players), m.load1,
	}, "\t")
}

// sampleOnce reads /metrics, and the heap after a GC from the profiler.
func (s *soaker) sampleOnce(ctx context.Context) (memSample, error) {
	m := memSample{at: time.Since(s.started)}
	body, err := s.get(ctx, strings.TrimRight(s.flags.url, "/")+"/metrics")
	if err != nil {
		return m, err
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		m.series++
		name, value, ok := metricLine(line)
		if !ok {
			continue
		}
		switch {
		case name == "go_memstats_heap_inuse_bytes":
			m.heapInuse = value
		case name == "go_memstats_heap_alloc_bytes":
			m.heapAlloc = value
		case name == "process_resident_memory_bytes":
			m.rss = value
		case name == "go_goroutines":
			m.goroutines = value
		case name == "taskqueue_websocket_connections":
			m.wsConns = value
		case strings.HasPrefix(name, "taskqueue_commands_total"):
			m.commands += value
		case strings.HasPrefix(name, "taskqueue_repetitions_total"):
			m.repetitions += value
		case name == "process_cpu_seconds_total":
			m.cpu = value
		}
	}
	if s.flags.debugURL != "" {
		// debug=1 ends with runtime.MemStats; gc=1 collects first.
		b, err := s.get(ctx, strings.TrimRight(s.flags.debugURL, "/")+"/debug/pprof/heap?debug=1&gc=1")
		if err != nil {
			return m, err
		}
		m.liveInuse = memStatsField(b, "HeapInuse")
		m.liveAlloc = memStatsField(b, "HeapAlloc")
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.load1 = strings.Fields(string(b))[0]
	}
	s.mu.Lock()
	m.players = len(s.seen)
	s.mu.Unlock()
	return m, nil
}

// metricLine splits a Prometheus text line into its name (with labels)
// and value.
func metricLine(line string) (string, float64, bool) {
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return "", 0, false
	}
	v, err := strconv.ParseFloat(line[i+1:], 64)
	return line[:i], v, err == nil
}

// memStatsField reads "# Name = N" from a debug=1 heap profile.
func memStatsField(b []byte, name string) float64 {
	prefix := "# " + name + " = "
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			v, _ := strconv.ParseFloat(strings.TrimPrefix(line, prefix), 64)
			return v
		}
	}
	return 0
}

func (s *soaker) saveProfile(ctx context.Context, at time.Duration) {
	if s.flags.debugURL == "" {
		return
	}
	b, err := s.get(ctx, strings.TrimRight(s.flags.debugURL, "/")+"/debug/pprof/heap?gc=1")
	if err != nil {
		s.fail(fmt.Errorf("heap profile at %s: %w", at, err))
		return
	}
	name := filepath.Join(s.flags.out, "heap-"+shortDuration(at)+".pb.gz")
	if err := os.WriteFile(name, b, 0o644); err != nil {
		s.fail(err)
	}
}

func (s *soaker) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = errors.New(resp.Status)
	}
	return b, err
}

// shortDuration writes d as "30m" or "90s".
func shortDuration(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}

// sleepCtx sleeps d, or less when ctx ends; it reports whether ctx is
// still alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

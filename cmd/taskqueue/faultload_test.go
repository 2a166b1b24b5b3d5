package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// playerLoad is the light load of the fault suite: a few players, each
// keeping a few short "tick" tasks in its queue, through the real HTTP API
// of whichever serve process is up. Every command carries an Idempotency-Key
// and is sent again, with the same key, until it gets a definitive answer
// (201, or a 4xx refusal): a transport error (the process was killed) or a
// 503/507 (a dependency down) is retried. So every command the players
// issued ends either acknowledged (its task must be in the log exactly
// once) or refused (its task must not be).
//
// It records what the players saw, by phase (the fault being played), and
// every answer that breaks a promise of the service: a 500, a 503/507
// without Retry-After, an answer later than the request deadline plus
// slack.
type playerLoad struct {
	t        *testing.T
	base     func(player string) string // the URL of the serve process the player uses, of the moment
	tokens   map[string]string
	deadline time.Duration // TASKQUEUE_REQUEST_TIMEOUT + slack
	client   *http.Client

	mu         sync.Mutex
	phase      string
	order      []string                  // phases in the order they began
	answers    map[string]map[string]int // phase → "POST 201" → count
	acked      map[string][]ackedTask    // player → tasks acknowledged (201)
	violations []string
	slowest    time.Duration
	unresolved int // commands that never got a definitive answer

	stop chan struct{}
	wg   sync.WaitGroup
}

// ackedTask is a task a player was told (201) is queued.
type ackedTask struct {
	TaskID string `json:"taskId"`
	Count  int    `json:"count"`
}

// allowedSlack is how much later than its deadline an answer may come on
// this shared, loaded machine (scheduling, the answer's own write).
const allowedSlack = 1500 * time.Millisecond

func newPlayerLoad(t *testing.T, base func(player string) string, tokens map[string]string, requestTimeout time.Duration) *playerLoad {
	return &playerLoad{
		t: t, base: base, tokens: tokens, deadline: requestTimeout + allowedSlack,
		client:  &http.Client{Timeout: 60 * time.Second},
		phase:   "warm-up",
		order:   []string{"warm-up"},
		answers: map[string]map[string]int{},
		acked:   map[string][]ackedTask{},
		stop:    make(chan struct{}),
	}
}

// setPhase names what the answers from now on are counted under.
func (l *playerLoad) setPhase(p string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.phase = p
	if !slices.Contains(l.order, p) {
		l.order = append(l.order, p)
	}
}

// phaseAnswers returns what the players saw during phase p, e.g.
// "GET 200×40, GET 503×2, POST 201×12".
func (l *playerLoad) phaseAnswers(p string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for k, n := range l.answers[p] {
		parts = append(parts, fmt.Sprintf("%s×%d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// phases returns the phases in the order they began.
func (l *playerLoad) phases() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.order)
}

func (l *playerLoad) start() {
	for player := range l.tokens {
		if player == probePlayer {
			continue
		}
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.play(player) }()
	}
}

// finish stops the players once their commands in flight have a
// definitive answer.
func (l *playerLoad) finish() {
	close(l.stop)
	l.wg.Wait()
}

func (l *playerLoad) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// play is one player: while its queue holds fewer than 3 tasks it queues
// a tick task of 1-3 repetitions and reads the queue at the version the
// answer gave; else it looks again a little later.
func (l *playerLoad) play(player string) {
	for !l.stopped() {
		status, body, _ := l.do(player, http.MethodGet, "", "", "")
		var q struct {
			Tasks []json.RawMessage `json:"tasks"`
		}
		if status != http.StatusOK || json.Unmarshal(body, &q) != nil || len(q.Tasks) >= 3 {
			time.Sleep(150 * time.Millisecond)
			continue
		}
		count := 1 + rand.IntN(3)
		etag, ok := l.enqueue(player, count)
		if ok && etag != "" {
			l.do(player, http.MethodGet, "?minVersion="+etag, "", "")
		}
		time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond)
	}
}

// enqueue sends one command until it has a definitive answer, with the
// same Idempotency-Key every time (for up to 3 minutes: a fault lasts at
// most a minute). It returns the ETag's version of an acknowledged one.
func (l *playerLoad) enqueue(player string, count int) (string, bool) {
	key := uuid.NewString()
	body := fmt.Sprintf(`{"type":"tick","count":%d}`, count)
	for end := time.Now().Add(3 * time.Minute); time.Now().Before(end); {
		status, b, h := l.do(player, http.MethodPost, "/tasks", body, key)
		switch {
		case status == http.StatusCreated:
			var task ackedTask
			if err := json.Unmarshal(b, &task); err != nil || task.TaskID == "" || task.Count != count {
				l.violation(fmt.Sprintf("POST tasks of %s: 201 with body %s", player, b))
				return "", false
			}
			l.mu.Lock()
			l.acked[player] = append(l.acked[player], task)
			l.mu.Unlock()
			return strings.Trim(strings.TrimPrefix(h.Get("ETag"), "W/"), `"`), true
		case status == 0, status == http.StatusServiceUnavailable, status == http.StatusInsufficientStorage:
			pause := 200 * time.Millisecond
			if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s > 0 {
				pause = 500 * time.Millisecond // honoured, shortened: the suite must stay short
			}
			time.Sleep(pause)
		case status >= 500:
			time.Sleep(200 * time.Millisecond) // recorded by do; the command is retried
		default:
			l.violation(fmt.Sprintf("POST tasks of %s refused: %d %s", player, status, b))
			return "", false
		}
	}
	l.mu.Lock()
	l.unresolved++
	l.mu.Unlock()
	l.violation(fmt.Sprintf("a command of %s got no definitive answer in 3 minutes", player))
	return "", false
}

// do sends one request to /api/queue/{player}+path. status 0 is a
// transport error (the process is down or was killed meanwhile).
// queueEmpty reads player's queue (path: a query such as ?minVersion=…)
// and reports whether it answered 200 with no task, with the answer.
func (l *playerLoad) queueEmpty(player, path string) (bool, int, []byte) {
	status, body, _ := l.do(player, http.MethodGet, path, "", "")
	var q struct {
		Tasks []json.RawMessage `json:"tasks"`
	}
	return status == http.StatusOK && json.Unmarshal(body, &q) == nil && len(q.Tasks) == 0, status, body
}

func (l *playerLoad) do(player, method, path, body, key string) (int, []byte, http.Header) {
	req, err := http.NewRequest(method, l.base(player)+"/api/queue/"+player+path, strings.NewReader(body))
	if err != nil {
		l.t.Error(err)
		return 0, nil, nil
	}
	req.Header.Set("Authorization", "Bearer "+l.tokens[player])
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	began := time.Now()
	resp, err := l.client.Do(req)
	took := time.Since(began)
	if err != nil {
		l.count(method + " refused")
		return 0, nil, nil
	}
	b, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	if rerr != nil {
		l.count(method + " cut")
		return 0, nil, nil
	}
	l.count(fmt.Sprintf("%s %d", method, resp.StatusCode))
	l.mu.Lock()
	l.slowest = max(l.slowest, took)
	l.mu.Unlock()
	what := fmt.Sprintf("%s %s", method, req.URL.RequestURI())
	switch {
	case took > l.deadline:
		l.violation(fmt.Sprintf("%s answered %d after %s, past the deadline %s", what, resp.StatusCode, took.Round(time.Millisecond), l.deadline))
	case resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusInsufficientStorage:
		l.violation(fmt.Sprintf("%s answered %d: %s", what, resp.StatusCode, b))
	case resp.StatusCode >= 500 && resp.Header.Get("Retry-After") == "":
		l.violation(fmt.Sprintf("%s answered %d without Retry-After", what, resp.StatusCode))
	}
	return resp.StatusCode, b, resp.Header
}

func (l *playerLoad) count(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.answers[l.phase]
	if m == nil {
		m = map[string]int{}
		l.answers[l.phase] = m
	}
	m[key]++
}

func (l *playerLoad) violation(s string) {
	l.mu.Lock()
	s = l.phase + ": " + s
	l.violations = append(l.violations, s)
	l.mu.Unlock()
	l.t.Error(s)
}

// ackedTasks returns a copy of the acknowledged tasks by player.
func (l *playerLoad) ackedTasks() map[string][]ackedTask {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]ackedTask{}
	for p, ts := range l.acked {
		out[p] = append([]ackedTask(nil), ts...)
	}
	return out
}

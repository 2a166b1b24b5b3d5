package processor

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/internal/teststore"
)

// The environment of the child process that TestFailoverWithinClaimTTL
// kills (the test binary run again with these set).
const (
	childDB     = "PROCESSOR_CHILD_DATABASE_URL"
	childRedis  = "PROCESSOR_CHILD_REDIS_URL"
	childPrefix = "PROCESSOR_CHILD_TOPIC_PREFIX"
	childTTL    = "PROCESSOR_CHILD_CLAIM_TTL"
	childDelay  = "PROCESSOR_CHILD_APPEND_DELAY"
)

// failoverSlack is what the test allows beyond the documented bound
// (ClaimTTL + takeOverMargin) for handling the command itself on a busy
// 2-core machine shared with other test processes. The bound is what is
// documented; the slack is not a promise.
const failoverSlack = 1500 * time.Millisecond

// A processor instance is killed with SIGKILL (a real child process: no
// graceful release of its claims, its Redis consumers' messages left
// pending, its connections cut) while it holds work: its commands are slow
// (each append waits), so it always has claimed repetitions in flight and,
// with Redis, messages read from the shared command streams and not acked
// — among them commands the survivor sent and keeps renewing the claims
// of. The survivor completes every repetition within the documented bound
// of the kill (or of its due time, if later), each exactly once.
func TestFailoverWithinClaimTTL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process for ~20 s")
	}
	for _, transport := range []string{"gochannel", "redis"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			runFailover(t, transport == "redis")
		})
	}
}

func runFailover(t *testing.T, withRedis bool) {
	const ttl = 2 * time.Second
	// A server of its own: a partition in another test holding back the
	// shared server's transaction horizon would delay the survivor's
	// schedule, not its take-over.
	url := testenv.StartPostgresServer(t).URL()
	survivor := testreadside.Postgres(t, url, 4)
	var redisURL, prefix string
	var client *redis.Client
	if withRedis {
		redisURL, prefix, client = teststore.Redis(t)
		prefix += "tq"
	}
	rules := domain.Rules{}
	h := commands(t, survivor, SystemClock{}, rules)
	const players = 24
	for i := range players {
		enqueue(t, h, fmt.Sprintf("f%02d", i), "chop-wood", 100)
		time.Sleep(100 * time.Millisecond) // due times spread over the 3 s of a repetition
	}

	child := startChild(t, url, redisURL, prefix, ttl, 2*time.Second)
	cfg := Config{Commands: commandConfig(rules), ClaimTTL: ttl, Owner: "survivor", Redis: client, TopicPrefix: prefix}
	if client == nil {
		cfg.Redis = nil // a typed nil would read as set
	}
	start(t, survivor, cfg)
	time.Sleep(8 * time.Second) // both run; the child falls behind
	killed := child.kill()
	// Everything due by a few seconds after the kill completes (however
	// long it takes: the bound is checked below, from the events).
	horizon := killed.Add(3 * time.Second)
	testenv.WaitUntil(t, waitDeadline, "the repetitions due by shortly after the kill", func() (bool, error) {
		if time.Now().Before(horizon) {
			return false, nil
		}
		for i := range players {
			q, _ := readQueue(t, survivor, fmt.Sprintf("f%02d", i), rules)
			if rep, ok := q.Repetition(); ok && q.Running() && !rep.DueAt.After(horizon) {
				return false, nil
			}
		}
		return true, nil
	})

	var worst time.Duration
	var worstRep string
	behind := 0 // repetitions due before the kill and completed after it
	for i := range players {
		player := fmt.Sprintf("f%02d", i)
		_, recs := readQueue(t, survivor, player, rules)
		checkCompletionsOnTime(t, player, recs)
		for _, r := range recs {
			e, err := domain.DecodeEvent(r.Type, r.SchemaVersion, r.Data)
			if err != nil {
				t.Fatal(err)
			}
			c, ok := e.(domain.RepetitionCompleted)
			if !ok || r.RecordedAt.Before(killed) {
				continue
			}
			if c.CompletedAt.Before(killed) {
				behind++
			}
			late := r.RecordedAt.Sub(later(killed, c.CompletedAt))
			if late > worst {
				worst, worstRep = late, fmt.Sprintf("%s %s/%d due %s", player, c.TaskID, c.Number, c.CompletedAt.Format("15:04:05.000"))
			}
		}
	}
	t.Logf("%s take-over: the latest completion came %s after the later of the kill and its due time (%s); %d repetitions due before the kill completed after it",
		map[bool]string{true: "redis", false: "gochannel"}[withRedis], worst.Round(time.Millisecond), worstRep, behind)
	if behind == 0 {
		t.Fatal("the kill left no work behind: the test did not test a take-over")
	}
	if bound := ttl + takeOverMargin + failoverSlack; worst > bound {
		t.Errorf("take-over took %s, over ClaimTTL %s + %s (+ %s slack)", worst.Round(time.Millisecond), ttl, takeOverMargin, failoverSlack)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// child is a processor in a process of its own.
type child struct {
	t   *testing.T
	cmd *exec.Cmd
}

// startChild runs TestFailoverChild in a child process: a processor named
// "killed" on url (and Redis when redisURL is set) whose appends each wait
// delay first; it returns once the child's processor runs.
func startChild(t *testing.T, url, redisURL, prefix string, ttl, delay time.Duration) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFailoverChild$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), childDB+"="+url, childRedis+"="+redisURL, childPrefix+"="+prefix,
		childTTL+"="+ttl.String(), childDelay+"="+delay.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd}
	t.Cleanup(func() { c.kill() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "child processor running") {
				close(ready)
				break
			}
		}
		for sc.Scan() { // drain
		}
	}()
	select {
	case <-ready:
	case <-time.After(waitDeadline):
		t.Fatal("the child processor did not start")
	}
	return c
}

// kill sends SIGKILL and returns when the child is gone.
func (c *child) kill() time.Time {
	if c.cmd.ProcessState != nil {
		return time.Now()
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	at := time.Now()
	_ = c.cmd.Wait()
	return at
}

// TestFailoverChild is the child process of TestFailoverWithinClaimTTL;
// without its environment it does nothing.
func TestFailoverChild(t *testing.T) {
	url := os.Getenv(childDB)
	if url == "" {
		t.Skip("the child process of TestFailoverWithinClaimTTL")
	}
	ttl, err := time.ParseDuration(os.Getenv(childTTL))
	if err != nil {
		t.Fatal(err)
	}
	delay, err := time.ParseDuration(os.Getenv(childDelay))
	if err != nil {
		t.Fatal(err)
	}
	b := testreadside.Postgres(t, url, 4)
	b.Store = slowStore{Store: b.Store, delay: delay}
	cfg := Config{Commands: commandConfig(domain.Rules{}), ClaimTTL: ttl, Owner: "killed", TopicPrefix: os.Getenv(childPrefix)}
	if u := os.Getenv(childRedis); u != "" {
		opts, err := redis.ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Redis = redis.NewClient(opts)
	}
	r := start(t, b, cfg)
	busOf(t, r)
	fmt.Println("child processor running, pid " + strconv.Itoa(os.Getpid()))
	time.Sleep(10 * time.Minute) // until killed
}

// slowStore delays every append (Append and AppendMany): an instance that
// falls behind.
type slowStore struct {
	eventstore.Store
	delay time.Duration
}

func (s slowStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	select {
	case <-ctx.Done():
		return eventstore.AppendResult{}, ctx.Err()
	case <-time.After(s.delay):
	}
	return s.Store.Append(ctx, stream, expected, events...)
}

// AppendMany is how the child's batches append: delayed like Append.
func (s slowStore) AppendMany(ctx context.Context, appends []eventstore.StreamAppend) ([]eventstore.AppendOutcome, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(s.delay):
	}
	return s.Store.AppendMany(ctx, appends)
}

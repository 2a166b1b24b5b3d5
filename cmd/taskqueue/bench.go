package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/auth"
)

// benchFlags are the flags of `bench` beside the configuration's (which
// give the JWT secret to sign the players' tokens with).
type benchFlags struct {
	url      string
	rate     int
	duration time.Duration
	warmup   time.Duration
	players  int
	prefix   string
	taskType string
	inflight int
}

const benchHelp = `bench drives POST /api/queue/{playerId}/tasks of a running server at a
steady rate (open loop: requests are sent on schedule whether or not earlier
ones have answered) over many players, then reports the latency percentiles.
Latency is measured from each request's scheduled send time, so a server that
falls behind is charged for the wait (no coordinated omission). Each player
sends with a token of its own, as players do; all the load comes from one
address, so a server with its default per-address limit (TASKQUEUE_RATE_LIMIT_IP)
answers most of it 429: start the server with TASKQUEUE_RATE_LIMIT_IP=-1 to
measure the service rather than its limiter. The report says how many
requests were rate limited.`

// bench runs the load generator.
func bench(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) > 0 && args[0] == "ws" {
		return benchWS(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	bf := benchFlags{}
	fs.StringVar(&bf.url, "url", "http://localhost:8080", "base URL of the server")
	fs.IntVar(&bf.rate, "rate", 500, "requests per second")
	fs.DurationVar(&bf.duration, "duration", 30*time.Second, "how long to measure")
	fs.DurationVar(&bf.warmup, "warmup", 3*time.Second, "load before measuring, not counted")
	fs.IntVar(&bf.players, "players", 0, "players to spread the load over (default: enough that no queue fills at the default limit of 10)")
	fs.StringVar(&bf.prefix, "player-prefix", "", "prefix of the players' IDs (default: bench-<time>-, fresh queues each run)")
	fs.StringVar(&bf.taskType, "type", "chop-wood", "task type to enqueue")
	fs.IntVar(&bf.inflight, "max-inflight", 2000, "requests in flight at most; beyond, a scheduled request counts as dropped")
	cfg, err := parseCommandLine(fs, benchHelp, args, stderr, getenv)
	if err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return &usageError{fmt.Sprintf("bench takes no arguments, got %q", fs.Args())}
	case bf.rate < 1 || bf.rate > 100000:
		return &usageError{fmt.Sprintf("--rate %d is not between 1 and 100000", bf.rate)}
	case bf.duration <= 0 || bf.warmup < 0:
		return &usageError{"--duration must be positive and --warmup not negative"}
	case bf.inflight < 1:
		return &usageError{"--max-inflight must be positive"}
	}
	total := int(float64(bf.rate) * (bf.duration + bf.warmup).Seconds())
	if bf.players <= 0 {
		bf.players = total/9 + 1 // at most 9 tasks per queue
	}
	if bf.prefix == "" {
		bf.prefix = fmt.Sprintf("bench-%d-", time.Now().Unix())
	}
	cfg = cfg.WithDefaults()
	tokens, err := app.NewTokens(cfg)
	if err != nil {
		return err
	}
	ttl := bf.duration + bf.warmup + time.Hour
	playerTokens := make([]string, bf.players)
	for i := range playerTokens {
		if playerTokens[i], _, err = tokens.Mint(benchPlayer(bf, i), auth.RolePlayer, ttl); err != nil {
			return err
		}
	}
	res, err := runBench(ctx, bf, playerTokens)
	if err != nil {
		return err
	}
	res.print(stdout, bf)
	return nil
}

type benchResult struct {
	latencies []time.Duration // of 201 answers in the measured window
	statuses  map[int]int
	errors    int
	dropped   int
	sent      int
	elapsed   time.Duration
	lastErr   string
}

// benchPlayer is the ID of the i-th simulated player.
func benchPlayer(bf benchFlags, i int) string { return fmt.Sprintf("%s%d", bf.prefix, i) }

// runBench sends the load, the i-th player's requests with tokens[i].
func runBench(ctx context.Context, bf benchFlags, tokens []string) (*benchResult, error) {
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        bf.inflight,
			MaxIdleConnsPerHost: bf.inflight,
			IdleConnTimeout:     time.Minute,
		},
	}
	// Check the server answers before loading it.
	resp, err := client.Get(strings.TrimRight(bf.url, "/") + "/healthz")
	if err != nil {
		return nil, fmt.Errorf("reach %s: %w", bf.url, err)
	}
	resp.Body.Close()

	body := []byte(fmt.Sprintf(`{"type":%q,"count":1}`, bf.taskType))
	res := &benchResult{statuses: map[int]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, bf.inflight)
	interval := time.Second / time.Duration(bf.rate)
	start := time.Now()
	measureFrom := start.Add(bf.warmup)
	end := measureFrom.Add(bf.duration)
	for i := 0; ; i++ {
		scheduled := start.Add(time.Duration(i) * interval)
		if !scheduled.Before(end) {
			break
		}
		if d := time.Until(scheduled); d > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(d):
			}
		}
		measured := !scheduled.Before(measureFrom)
		select {
		case slots <- struct{}{}:
		default:
			if measured {
				mu.Lock()
				res.dropped++
				mu.Unlock()
			}
			continue
		}
		player, token := benchPlayer(bf, i%bf.players), tokens[i%bf.players]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost,
				strings.TrimRight(bf.url, "/")+"/api/queue/"+player+"/tasks", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			var status int
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				status = resp.StatusCode
			}
			latency := time.Since(scheduled)
			if !measured {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			res.sent++
			switch {
			case err != nil:
				res.errors++
				res.lastErr = err.Error()
			case status == http.StatusCreated:
				res.statuses[status]++
				res.latencies = append(res.latencies, latency)
			default:
				res.statuses[status]++
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(measureFrom)
	return res, nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func (r *benchResult) print(w io.Writer, bf benchFlags) {
	slices.Sort(r.latencies)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
	fmt.Fprintf(w, "POST /api/queue/{id}/tasks at %d/s for %s (after %s warm-up) over %d players\n", bf.rate, bf.duration, bf.warmup, bf.players)
	fmt.Fprintf(w, "sent %d (%.1f/s), 201: %d, other statuses: %v, transport errors: %d, dropped (over %d in flight): %d\n",
		r.sent, float64(r.sent)/bf.duration.Seconds(), len(r.latencies), otherStatuses(r.statuses), r.errors, bf.inflight, r.dropped)
	if r.lastErr != "" {
		fmt.Fprintf(w, "last transport error: %s\n", r.lastErr)
	}
	fmt.Fprintf(w, "latency of 201s: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		ms(percentile(r.latencies, 50)), ms(percentile(r.latencies, 90)), ms(percentile(r.latencies, 99)),
		ms(percentile(r.latencies, 99.9)), ms(percentile(r.latencies, 100)))
	if n := r.statuses[http.StatusTooManyRequests]; n > 0 {
		fmt.Fprintf(w, "RATE LIMITED: %d of %d requests answered 429, so this measured the server's rate limits, not its speed; "+
			"all the load comes from one address: start the server with TASKQUEUE_RATE_LIMIT_IP=-1 "+
			"(and TASKQUEUE_RATE_LIMIT_PLAYER=-1, or more --players) to measure the service\n", n, r.sent)
	}
}

func otherStatuses(m map[int]int) map[int]int {
	out := map[int]int{}
	for k, v := range m {
		if k != http.StatusCreated {
			out[k] = v
		}
	}
	return out
}

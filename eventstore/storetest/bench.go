package storetest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/eventstore"
)

// BenchWriters is the number of concurrent writers in BenchmarkAppend.
const BenchWriters = 16

// BenchmarkAppend measures single-event appends from BenchWriters
// concurrent writers, each on a stream of its own with exact expected
// versions (what a command handler does), and reports appends/s.
// newStore returns a fresh store; the benchmark closes it.
func BenchmarkAppend(b *testing.B, newStore func(testing.TB) eventstore.Store) {
	st := newStore(b)
	defer st.Close()
	ctx := context.Background()
	// Warm up: create the streams (and the pool's connections).
	versions := make([]int64, BenchWriters)
	for w := range versions {
		res, err := st.Append(ctx, fmt.Sprintf("bench-%d", w), eventstore.NoStream, event("Bench", 0))
		if err != nil {
			b.Fatalf("warm up: %v", err)
		}
		versions[w] = res.Version
	}
	var next atomic.Int64
	var failed atomic.Pointer[error]
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < BenchWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("bench-%d", w)
			v := versions[w]
			for next.Add(1) <= int64(b.N) {
				res, err := st.Append(ctx, stream, eventstore.Exact(v), event("Bench", int(v)))
				if err != nil {
					failed.Store(&err)
					return
				}
				v = res.Version
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatalf("append: %v", *err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
}

// BenchmarkIdleWakeup measures how long an idle subscriber takes to
// deliver a new event appended through the same store: each iteration lets
// the subscriber go idle for idle, appends one event and waits for it.
// newStore returns a fresh store; the benchmark closes it. See
// BenchmarkIdleWakeupBetween for the metrics.
func BenchmarkIdleWakeup(b *testing.B, newStore func(testing.TB) eventstore.Store, idle time.Duration) {
	st := newStore(b)
	defer st.Close()
	BenchmarkIdleWakeupBetween(b, st, st, idle)
}

// BenchmarkIdleWakeupBetween is BenchmarkIdleWakeup with the append made
// through writer and the subscriber on reader: two stores over the same
// log, as two processes would be. It reports, over the iterations, the
// mean, median and 99th percentile from the start of the Append call to the
// delivery ("ms-mean", "ms-p50", "ms-p99") and the mean from the return of
// Append to the delivery ("ms-after-return", 0 when the delivery came
// first). ns/op includes the idle pause.
func BenchmarkIdleWakeupBetween(b *testing.B, writer, reader eventstore.Store, idle time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	from, err := reader.Head(ctx)
	if err != nil {
		b.Fatalf("head: %v", err)
	}
	sub, err := reader.Subscribe(ctx, from, eventstore.Filter{})
	if err != nil {
		b.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	type delivery struct {
		at  time.Time
		err error
	}
	deliveries := make(chan delivery, 1)
	go func() {
		for {
			_, err := sub.Next(ctx)
			select {
			case deliveries <- delivery{time.Now(), err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	latencies := make([]time.Duration, 0, b.N)
	var afterReturn time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		time.Sleep(idle) // let the subscriber go idle: this is what is measured
		start := time.Now()
		if _, err := writer.Append(ctx, "wakeup", eventstore.Any, event("Wakeup", i)); err != nil {
			b.Fatalf("append: %v", err)
		}
		returned := time.Now()
		d := <-deliveries
		if d.err != nil {
			b.Fatalf("next: %v", d.err)
		}
		latencies = append(latencies, d.at.Sub(start))
		if d.at.After(returned) {
			afterReturn += d.at.Sub(returned)
		}
	}
	b.StopTimer()
	cancel()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	var sum time.Duration
	for _, l := range latencies {
		sum += l
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(sum/time.Duration(len(latencies))), "ms-mean")
	b.ReportMetric(ms(latencies[len(latencies)/2]), "ms-p50")
	b.ReportMetric(ms(latencies[len(latencies)*99/100]), "ms-p99")
	b.ReportMetric(ms(afterReturn/time.Duration(len(latencies))), "ms-after-return")
}

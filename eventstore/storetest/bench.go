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
	op := appendOp(b, st)
	b.ReportAllocs()
	b.ResetTimer()
	elapsed, err := RunWriters(b.N, op)
	b.StopTimer()
	if err != nil {
		b.Fatalf("append: %v", err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
}

// Baseline prepares the raw workload a store's appends are compared with
// and returns its operation: op(ctx, w, seq) does the seq-th operation
// (from 1) of writer w (from 0 to BenchWriters-1), for example one INSERT
// of an event's row and its commit. What it opened closes with tb's
// cleanups.
type Baseline func(tb testing.TB) (op func(ctx context.Context, w int, seq int64) error)

// BenchmarkAppendVsBaseline runs, in each run of the benchmark, b.N
// single-event appends exactly as BenchmarkAppend makes them and b.N
// operations of baseline from the same BenchWriters writers, on a fresh
// store and a fresh baseline, and reports both rates ("appends/s",
// "baseline/s") and their ratio ("ratio", appends/s divided by
// baseline/s): one run is one round of a side-by-side comparison. The two
// workloads alternate in slices (of about a tenth of b.N each, the first
// slice of each pair taking turns), so that load that comes and goes on
// the machine hits both alike. ns/op covers both.
func BenchmarkAppendVsBaseline(b *testing.B, newStore func(testing.TB) eventstore.Store, baseline Baseline) {
	st := newStore(b)
	defer st.Close()
	appendOp := appendOp(b, st)
	baseOp := baseline(b)
	// Warm the baseline up as appendOp warmed the store (connections,
	// files, prepared statements).
	if _, err := RunWriters(BenchWriters, baseOp); err != nil {
		b.Fatalf("warm up the baseline: %v", err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var appends, base time.Duration
	const slices = 10
	for i := range slices {
		n := b.N*(i+1)/slices - b.N*i/slices
		if n == 0 {
			continue
		}
		ops := []func(context.Context, int, int64) error{appendOp, baseOp}
		took := []*time.Duration{&appends, &base}
		for k := range 2 {
			j := (i + k) % 2
			d, err := RunWriters(n, ops[j])
			if err != nil {
				b.Fatalf("%s: %v", [2]string{"append", "baseline"}[j], err)
			}
			*took[j] += d
		}
	}
	b.StopTimer()
	perSecond := func(d time.Duration) float64 { return float64(b.N) / d.Seconds() }
	b.ReportMetric(perSecond(appends), "appends/s")
	b.ReportMetric(perSecond(base), "baseline/s")
	b.ReportMetric(perSecond(appends)/perSecond(base), "ratio")
}

// appendOp creates BenchWriters streams in st (warming the store up) and
// returns the operation of BenchAppend's writers: append one event to the
// writer's stream at its exact version.
func appendOp(b *testing.B, st eventstore.Store) func(ctx context.Context, w int, seq int64) error {
	ctx := context.Background()
	versions := make([]int64, BenchWriters)
	for w := range versions {
		res, err := st.Append(ctx, fmt.Sprintf("bench-%d", w), eventstore.NoStream, event("Bench", 0))
		if err != nil {
			b.Fatalf("warm up: %v", err)
		}
		versions[w] = res.Version
	}
	return func(ctx context.Context, w int, _ int64) error {
		res, err := st.Append(ctx, fmt.Sprintf("bench-%d", w), eventstore.Exact(versions[w]), event("Bench", int(versions[w])))
		if err != nil {
			return err
		}
		versions[w] = res.Version // only writer w touches versions[w]
		return nil
	}
}

// RunWriters runs n operations from BenchWriters concurrent writers, op(ctx,
// w, seq) being the seq-th (from 1) of writer w, each writer taking the
// next as soon as it finished its last, and returns the time they took, or
// the first error. Benchmarks time their baselines with it.
func RunWriters(n int, op func(ctx context.Context, w int, seq int64) error) (time.Duration, error) {
	ctx := context.Background()
	var next atomic.Int64
	var failed atomic.Pointer[error]
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < BenchWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := int64(1); next.Add(1) <= int64(n); seq++ {
				if err := op(ctx, w, seq); err != nil {
					failed.Store(&err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := failed.Load(); err != nil {
		return elapsed, *err
	}
	return elapsed, nil
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

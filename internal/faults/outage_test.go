package faults_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

type observer struct {
	mu       sync.Mutex
	errs     int
	degraded []bool
}

func (o *observer) TransientError(string, faults.Kind) { o.mu.Lock(); o.errs++; o.mu.Unlock() }
func (o *observer) Degraded(_ string, d bool) {
	o.mu.Lock()
	o.degraded = append(o.degraded, d)
	o.mu.Unlock()
}

// Two outages of many failed attempts each: two lines when they start, two
// when they end, every failure counted, waits growing and bounded.
func TestOutageLogsOncePerOutage(t *testing.T) {
	var log testenv.SyncBuffer
	obs := &observer{}
	o := faults.NewOutage(faults.OutageConfig{Component: "due loop", Logger: slog.New(slog.NewTextHandler(&log, nil)),
		Observer: obs, Initial: time.Millisecond, Max: 8 * time.Millisecond})
	refused := errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	for range 2 {
		var waits []time.Duration
		for range 20 {
			waits = append(waits, o.Failed(refused))
		}
		if _, last, down := o.Down(); !down || last != refused {
			t.Fatalf("Down() = %v, %v; want down with the last error", last, down)
		}
		if waits[0] > 2*time.Millisecond || waits[19] > 12*time.Millisecond || waits[19] < 4*time.Millisecond {
			t.Errorf("waits %v: want from ~1 ms growing to ~8 ms (±50%%)", waits)
		}
		o.Recovered()
		o.Recovered() // no outage: nothing
	}
	if !o.Wait(context.Background(), refused) {
		t.Error("Wait on a live context reported it ended")
	}
	o.Recovered()
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 6 || strings.Count(log.String(), "retrying until it is back") != 3 || strings.Count(log.String(), "recovered") != 3 {
		t.Errorf("log, want 3 outages of one start and one end line each:\n%s", log.String())
	}
	if obs.errs != 41 || len(obs.degraded) != 6 || !obs.degraded[0] || obs.degraded[1] {
		t.Errorf("observer saw %d errors and degraded %v; want 41 and true,false three times", obs.errs, obs.degraded)
	}
}

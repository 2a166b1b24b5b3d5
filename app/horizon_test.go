package app

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/eventstore/postgres"
)

// The watch says once when a transaction starts holding the log's readers
// back and once when it ends, and /readyz shows it as degraded meanwhile.
func TestHorizonWatchReportsAHoldOnce(t *testing.T) {
	var out bytes.Buffer
	w := &horizonWatch{log: slog.New(slog.NewTextHandler(&out, nil))}
	check := w.readiness()
	if !check.Optional {
		t.Fatal("the log horizon check must be optional: the hold is the cluster's, not this instance's")
	}
	w.observe(postgres.Horizon{Age: time.Second, PID: 7})
	if err := check.Check(context.Background()); err != nil {
		t.Fatalf("a transaction open for 1 s reported: %v", err)
	}
	held := postgres.Horizon{Age: HorizonAlertAge + time.Second, PID: 42, Database: "game", Application: "psql", State: "idle in transaction", Unreadable: 17}
	w.observe(held)
	held.Age += 5 * time.Second
	w.observe(held)
	err := check.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "pid 42") || !strings.Contains(err.Error(), "17 committed events") {
		t.Fatalf("readiness while held = %v; want the transaction named and the events waiting", err)
	}
	if age, waiting := w.state(); age != held.Age || waiting != 17 {
		t.Fatalf("state = %v, %d; want %v, 17", age, waiting, held.Age)
	}
	w.observe(postgres.Horizon{})
	if err := check.Check(context.Background()); err != nil {
		t.Fatalf("readiness after the hold ended = %v", err)
	}
	log := out.String()
	if n := strings.Count(log, "readers are held back"); n != 1 {
		t.Fatalf("the hold was logged %d times, want once:\n%s", n, log)
	}
	if !strings.Contains(log, "pid=42") || !strings.Contains(log, "application=psql") {
		t.Fatalf("the log line does not name the transaction:\n%s", log)
	}
	if n := strings.Count(log, "readers go on"); n != 1 {
		t.Fatalf("the end of the hold was logged %d times, want once:\n%s", n, log)
	}
}

package relay

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/processor"
)

// The relay's tests drive real queues to produce the events it publishes:
// command handlers append them, and a processor completes the repetitions
// on a manual clock. These helpers are the processor tests' own, trimmed.

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// waitDeadline bounds every wait of these tests.
var waitDeadline = 2 * time.Minute

// backend is a real event store and the database of its read models.
type backend = testreadside.Backend

func quietLogger() *slog.Logger {
	if os.Getenv("RELAY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startProcessor builds a processor on b with cfg and runs it until the end
// of the test.
func startProcessor(t testing.TB, b backend, cfg processor.Config) {
	t.Helper()
	cfg.Store, cfg.DB = b.Store, b.DB
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	p, err := processor.New(cfg)
	if err != nil {
		t.Fatalf("new processor: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("processor run: %v", err)
			}
		})
	})
}

// commands returns command handlers over b with clock, as the web layer
// would use them.
func commands(t testing.TB, b backend, clock processor.Clock, rules domain.Rules) *command.Handlers {
	t.Helper()
	h, err := command.NewHandlers(b.Store, command.Config{Rules: rules, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func enqueue(t testing.TB, h *command.Handlers, player, typ string, count int) {
	t.Helper()
	_, err := h.EnqueueTask.Handle(context.Background(), command.EnqueueTask{
		Request: command.Request{PlayerID: player, Actor: player}, Type: typ, Count: count,
	})
	if err != nil {
		t.Fatalf("enqueue %s x%d for %s: %v", typ, count, player, err)
	}
}

// queueDone reports whether the player's queue has no tasks left.
func queueDone(t testing.TB, b backend, player string, rules domain.Rules) func() (bool, error) {
	return func() (bool, error) {
		id, err := domain.ParsePlayerID(player)
		if err != nil {
			return false, err
		}
		recs, err := b.Store.ReadStream(context.Background(), id.Stream(), 1, 0)
		if err != nil {
			return false, err
		}
		q := domain.NewQueue(id, rules)
		for _, r := range recs {
			e, err := domain.DecodeEvent(r.Type, r.SchemaVersion, r.Data)
			if err != nil {
				return false, err
			}
			if err := q.Apply(e); err != nil {
				return false, err
			}
		}
		return q.Len() == 0, nil
	}
}

func commandConfig(rules domain.Rules) command.Config { return command.Config{Rules: rules} }

// logBuffer collects a logger's output for the test to read.
type logBuffer struct{ testenv.SyncBuffer }

func (l *logBuffer) count(s string) int { return strings.Count(l.String(), s) }

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// The log lines of an outage of component (faults.Outage's).
func outageStarted(component string) string { return component + ": a dependency is unavailable" }
func outageEnded(component string) string   { return component + ": recovered" }

package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/projections"
)

// backend is a real event store and the database of its read models.
type backend = testreadside.Backend

func quietLogger() *slog.Logger {
	if os.Getenv("PROCESSOR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// running is a started Processor.
type running struct {
	p    *Processor
	stop func() // cancels Run and waits for it to return
}

// start builds a Processor on b with cfg and runs it until stop or the
// end of the test.
func start(t testing.TB, b backend, cfg Config) *running {
	t.Helper()
	cfg.Store, cfg.DB = b.Store, b.DB
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("new processor: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("processor run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &running{p: p, stop: stop}
}

// commands returns command handlers over b with clock, as the web layer
// would use them.
func commands(t testing.TB, b backend, clock Clock, rules domain.Rules) *command.Handlers {
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

// readQueue replays a player's stream into a fresh aggregate (no cache).
func readQueue(t testing.TB, b backend, player string, rules domain.Rules) (*domain.Queue, []eventstore.RecordedEvent) {
	t.Helper()
	id, err := domain.ParsePlayerID(player)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := b.Store.ReadStream(context.Background(), id.Stream(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	q := domain.NewQueue(id, rules)
	for _, r := range recs {
		e, err := domain.DecodeEvent(r.Type, r.SchemaVersion, r.Data)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Apply(e); err != nil {
			t.Fatalf("apply %s v%d: %v", r.Type, r.Version, err)
		}
	}
	return q, recs
}

// checkCompletionsOnTime checks that every repetition completed exactly
// once, at the due time its start announced.
func checkCompletionsOnTime(t testing.TB, player string, recs []eventstore.RecordedEvent) int {
	t.Helper()
	dueAt := map[string]time.Time{}
	done := map[string]bool{}
	n := 0
	for _, r := range recs {
		e, err := domain.DecodeEvent(r.Type, r.SchemaVersion, r.Data)
		if err != nil {
			t.Fatal(err)
		}
		switch e := e.(type) {
		case domain.RepetitionStarted:
			dueAt[fmt.Sprintf("%s/%d", e.TaskID, e.Number)] = e.DueAt
		case domain.RepetitionCompleted:
			k := fmt.Sprintf("%s/%d", e.TaskID, e.Number)
			if done[k] {
				t.Errorf("%s: repetition %s completed twice", player, k)
			}
			done[k] = true
			if !e.CompletedAt.Equal(dueAt[k]) {
				t.Errorf("%s: repetition %s completed at %s, due at %s", player, k, e.CompletedAt, dueAt[k])
			}
			n++
		}
	}
	return n
}

// reference is what the rules give for the same requests: a pure
// aggregate that sees the enqueues at t0 and then time passing to until.
func reference(t testing.TB, player string, rules domain.Rules, t0, until time.Time, tasks [][2]any) *domain.Queue {
	t.Helper()
	q := domain.NewQueue(domain.PlayerID(player), rules)
	for i, tk := range tasks {
		if _, err := q.Enqueue(domain.TaskID(fmt.Sprintf("ref-%d", i)), domain.TaskTypeID(tk[0].(string)), tk[1].(int), nil, t0); err != nil {
			t.Fatal(err)
		}
	}
	for range 10000 {
		rep, ok := q.Repetition()
		if !ok || rep.DueAt.After(until) {
			break
		}
		if _, err := q.Advance(until); err != nil {
			t.Fatal(err)
		}
	}
	return q
}

func sameProgress(a, b *domain.Queue) error {
	var errs []error
	ai, bi := a.Inventory(), b.Inventory()
	if fmt.Sprint(ai) != fmt.Sprint(bi) {
		errs = append(errs, fmt.Errorf("inventory %v, want %v", ai, bi))
	}
	for _, s := range domain.DefaultCatalog().Skills() {
		if a.XP(s.ID) != b.XP(s.ID) {
			errs = append(errs, fmt.Errorf("%s XP %d, want %d", s.ID, a.XP(s.ID), b.XP(s.ID)))
		}
	}
	return errors.Join(errs...)
}

type projectionsTx = projections.Tx

func commandConfig(rules domain.Rules) command.Config { return command.Config{Rules: rules} }

// catalogWithout returns the default catalog without the given task types.
func catalogWithout(t testing.TB, ids ...string) *domain.Catalog {
	t.Helper()
	var f map[string]any
	if err := json.Unmarshal(domain.DefaultCatalogJSON(), &f); err != nil {
		t.Fatal(err)
	}
	var kept []any
	for _, tk := range f["tasks"].([]any) {
		if !slices.Contains(ids, tk.(map[string]any)["id"].(string)) {
			kept = append(kept, tk)
		}
	}
	f["tasks"] = kept
	data, _ := json.Marshal(f)
	c, err := domain.ParseCatalog(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var waitDeadline = 2 * time.Minute

package ops

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/projections/projectiontest"
)

func TestImportRefusesANonEmptyStoreAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	for _, b := range []backend{testreadside.SQLite(t), testreadside.Postgres(t, "", 6)} {
		t.Run(b.Name, func(t *testing.T) {
			src := testreadside.SQLite(t)
			if _, err := (projectiontest.Workload{Seed: 1, Players: 2, Commands: 40}).Run(ctx, src.Store); err != nil {
				t.Fatal(err)
			}
			var file bytes.Buffer
			if _, err := Export(ctx, src.Store, &file, Range{}); err != nil {
				t.Fatal(err)
			}
			history := scriptedHistory(t, b.Store)
			// Head is the last event below the horizon, which on PostgreSQL
			// any transaction of the cluster (another package's test) holds
			// back for a while: wait until it shows alice's last event.
			recs, err := b.Store.ReadStream(ctx, "queue-alice", 1, 0)
			if err != nil || len(recs) == 0 {
				t.Fatalf("read alice's stream: %d events, %v", len(recs), err)
			}
			head := recs[len(recs)-1].Position
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
				if h, err := b.Store.Head(ctx); err == nil && h == head {
					break
				} else if time.Now().After(deadline) {
					t.Fatalf("head %s (%v) never reached alice's last event %s", h, err, head)
				}
			}
			_, err = Import(ctx, b.Store, bytes.NewReader(file.Bytes()))
			if !errors.Is(err, ErrStoreNotEmpty) || !strings.Contains(err.Error(), "empty store") {
				t.Fatalf("import into a store with events: %v, want ErrStoreNotEmpty", err)
			}
			after, _ := b.Store.Head(ctx)
			if after != head {
				t.Fatalf("refused import moved the head from %s to %s", head, after)
			}
			got, err := QueueAt(ctx, b.Store, "alice", Moment{}, domain.Rules{})
			if err != nil {
				t.Fatal(err)
			}
			if mustJSON(t, got.Queue) != mustJSON(t, history[len(history)-1].view) {
				t.Fatal("a refused import changed the queue")
			}
		})
	}
}

func TestImportOfBadInputWritesNothing(t *testing.T) {
	ctx := context.Background()
	src := testreadside.SQLite(t)
	if _, err := (projectiontest.Workload{Seed: 2, Players: 2, Commands: 60}).Run(ctx, src.Store); err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	if _, err := Export(ctx, src.Store, &file, Range{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(file.String(), "\n"), "\n")
	if len(lines) < 10 {
		t.Fatalf("only %d lines exported", len(lines))
	}
	good := file.String()
	cases := []struct {
		name, input, want string
	}{
		{"not JSON at the end", good + "{not json\n", "is not an event line"},
		{"a stream from its middle", strings.Join(lines[1:], ""), "not 1"},
		{"a version skipped", strings.Join(append(append([]string{}, lines[:5]...), lines[6:]...), ""), "version"},
		{"an ID twice", good + strings.Replace(lines[0], `"stream":"`, `"stream":"x`, 1), "already on line 1"},
		{"no data", good + `{"id":"6f1e7d2a-3b4c-4d5e-8f90-a1b2c3d4e5f6","stream":"queue-zed","version":1,"type":"QueueStarted","schemaVersion":1,"metadata":{"occurredAt":"2026-11-29T00:00:00Z"}}` + "\n", "no data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := testreadside.SQLite(t)
			_, err := Import(ctx, dst.Store, strings.NewReader(c.input))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "line ") {
				t.Fatalf("import: %v, want an error naming the line and %q", err, c.want)
			}
			if head, _ := dst.Store.Head(ctx); !head.IsZero() {
				t.Fatalf("bad input wrote events up to %s", head)
			}
		})
	}
}

func TestBadOperatorInputGetsClearErrors(t *testing.T) {
	ctx := context.Background()
	b := testreadside.SQLite(t)
	r := startRunner(t, b)

	var out bytes.Buffer
	err := Replay(ctx, r, &out, ReplayOptions{Projection: "queue_statuz"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `unknown projection "queue_statuz"`) || !strings.Contains(err.Error(), "queues") {
		t.Errorf("replay of an unknown projection: %v", err)
	}
	if err := Replay(ctx, r, &out, ReplayOptions{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("replay without a projection: %v", err)
	}
	into := filepath.Join(t.TempDir(), "x.db")
	if _, err := ReplayTo(ctx, b.Store, &out, ReplayToOptions{ReplayOptions: ReplayOptions{Projection: "nope"}, To: Moment{Time: time.Now()}, Into: into}); !errors.Is(err, ErrInvalid) {
		t.Errorf("replay to of an unknown projection: %v", err)
	}
	if _, err := ReplayTo(ctx, b.Store, &out, ReplayToOptions{ReplayOptions: ReplayOptions{Projection: "all"}, Into: into}); !errors.Is(err, ErrInvalid) {
		t.Errorf("replay to without a bound: %v", err)
	}
	existing := filepath.Join(t.TempDir(), "taken.db")
	openSQLiteAt(t, existing)
	if _, err := ReplayTo(ctx, b.Store, &out, ReplayToOptions{ReplayOptions: ReplayOptions{Projection: "all"}, To: Moment{Time: time.Now()}, Into: existing}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "exists") {
		t.Errorf("replay into an existing file: %v", err)
	}

	for _, s := range []string{"yesterday", "2026-13-01", "noon", "1:2:3", "-5"} {
		if _, err := ParseMoment(s); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "RFC 3339") {
			t.Errorf("ParseMoment(%q): %v", s, err)
		}
	}
	for s, want := range map[string]Moment{
		"42":                   {Position: eventstore.Position{Seq: 42}, HasPosition: true},
		"7:3":                  {Position: eventstore.Position{Commit: 7, Seq: 3}, HasPosition: true},
		"2026-11-29T10:00:00Z": {Time: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)},
		"2026-11-29":           {Time: time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := ParseMoment(s)
		if err != nil || got != want {
			t.Errorf("ParseMoment(%q) = %+v, %v; want %+v", s, got, err, want)
		}
	}

	if _, err := ParseRange("2026-11-30", "2026-11-29"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "is not before") {
		t.Errorf("from after to: %v", err)
	}
	if _, err := ParseRange("2026-11-29", "soon"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "--to") {
		t.Errorf("bad --to: %v", err)
	}
	if _, err := Export(ctx, b.Store, &out, Range{From: time.Now(), To: time.Now().Add(-time.Hour)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("export with from after to: %v", err)
	}
	if _, err := ListEvents(ctx, b.Store, &out, EventsQuery{Player: "not a player!"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("events of a bad player ID: %v", err)
	}
	if _, err := QueueAt(ctx, b.Store, "", Moment{}, domain.Rules{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("queue of an empty player ID: %v", err)
	}
}

func TestAdminParametersAreValidated(t *testing.T) {
	ctx := context.Background()
	b := testreadside.SQLite(t)
	history := scriptedHistory(t, b.Store)
	var ve *domain.ValidationError
	for _, c := range []struct {
		params url.Values
		field  string
	}{
		{url.Values{"from": {"last tuesday"}}, "from"},
		{url.Values{"limit": {"0"}}, "limit"},
		{url.Values{"limit": {"1001"}}, "limit"},
	} {
		if _, err := AdminEvents(ctx, b.Store, "alice", c.params); !errors.As(err, &ve) || ve.Field != c.field {
			t.Errorf("AdminEvents(%v): %v, want a validation error on %s", c.params, err, c.field)
		}
	}
	if _, err := AdminQueueAt(ctx, b.Store, "alice", url.Values{"at": {"then"}}, domain.Rules{}); !errors.As(err, &ve) || ve.Field != "at" {
		t.Errorf("AdminQueueAt(at=then): %v", err)
	}
	page, err := AdminEvents(ctx, b.Store, "alice", url.Values{"type": {"TaskEnqueued,QueueStopped"}, "limit": {"2"}})
	if err != nil || len(page.Events) != 2 || page.Events[0].Type != "TaskEnqueued" || page.Events[1].Type != "TaskEnqueued" {
		t.Fatalf("AdminEvents by type: %+v, %v", page, err)
	}
	res, err := AdminQueueAt(ctx, b.Store, "alice", url.Values{"at": {history[0].at.Format(time.RFC3339)}}, domain.Rules{})
	if err != nil || mustJSON(t, res.Queue) != mustJSON(t, history[0].view) {
		t.Fatalf("AdminQueueAt: %+v, %v", res, err)
	}
}

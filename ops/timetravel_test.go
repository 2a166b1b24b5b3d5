package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/projections"
)

// moment is the queue as a scripted history left it after one command.
type moment struct {
	at       time.Time
	position eventstore.Position
	view     domain.QueueView
}

// scriptedHistory plays a known life of alice's queue on store, one append
// per command as the service does, and returns the view after each command.
func scriptedHistory(t *testing.T, store eventstore.Store) []moment {
	t.Helper()
	ctx := context.Background()
	q := domain.NewQueue("alice", domain.Rules{})
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	steps := []struct {
		after  time.Duration
		decide func(now time.Time) ([]domain.Event, error)
	}{
		{0, func(now time.Time) ([]domain.Event, error) { return q.Enqueue("t1", "chop-wood", 3, nil, now) }},
		{time.Second, func(now time.Time) ([]domain.Event, error) { return q.Enqueue("t2", "catch-shrimp", 2, nil, now) }},
		{4 * time.Second, func(now time.Time) ([]domain.Event, error) { return q.Advance(now) }},
		{time.Second, func(now time.Time) ([]domain.Event, error) { return q.Stop("", now) }},
		{time.Minute, func(now time.Time) ([]domain.Event, error) { return q.Start(now) }},
		{time.Second, func(now time.Time) ([]domain.Event, error) { return q.Remove("t2", now) }},
		{time.Minute, func(now time.Time) ([]domain.Event, error) { return q.Advance(now) }},
	}
	var out []moment
	now := t0
	for i, s := range steps {
		now = now.Add(s.after)
		evs, err := s.decide(now)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if len(evs) == 0 {
			t.Fatalf("step %d decided nothing: the script is wrong", i)
		}
		data := make([]eventstore.EventData, len(evs))
		for j, e := range evs {
			typ, sv, b, err := domain.EncodeEvent(e)
			if err != nil {
				t.Fatal(err)
			}
			data[j] = eventstore.EventData{ID: uuid.New(), Type: string(typ), SchemaVersion: sv, Data: b,
				Metadata: eventstore.Metadata{OccurredAt: e.OccurredAt(), Actor: "alice", CorrelationID: fmt.Sprintf("step-%d", i)}}
		}
		res, err := store.Append(ctx, "queue-alice", eventstore.Exact(q.Version()-int64(len(evs))), data...)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, moment{at: now, position: res.Position, view: q.View()})
	}
	return out
}

func TestQueueAtShowsTheQueueAsItWasAtEachMoment(t *testing.T) {
	ctx := context.Background()
	for _, b := range []backend{testreadside.SQLite(t), testreadside.Postgres(t, "", 6)} {
		t.Run(b.Name, func(t *testing.T) {
			history := scriptedHistory(t, b.Store)
			before, err := QueueAt(ctx, b.Store, "alice", Moment{Time: history[0].at.Add(-time.Second)}, domain.Rules{})
			if err != nil {
				t.Fatal(err)
			}
			if before.Events != 0 || before.Queue.Version != 0 || len(before.Queue.Tasks) != 0 {
				t.Fatalf("before the first event: %+v, want the empty queue", before)
			}
			for i, m := range history {
				want := mustJSON(t, m.view)
				// By time: at the command, and just before the next one.
				for _, at := range []time.Time{m.at, m.at.Add(500 * time.Millisecond)} {
					got, err := QueueAt(ctx, b.Store, "alice", Moment{Time: at}, domain.Rules{})
					if err != nil {
						t.Fatal(err)
					}
					if g := mustJSON(t, got.Queue); g != want {
						t.Errorf("step %d at %s:\n got  %s\n want %s", i, at.Format(time.RFC3339Nano), g, want)
					}
				}
				// By position.
				got, err := QueueAt(ctx, b.Store, "alice", Moment{Position: m.position, HasPosition: true}, domain.Rules{})
				if err != nil {
					t.Fatal(err)
				}
				if g := mustJSON(t, got.Queue); g != want {
					t.Errorf("step %d at position %s:\n got  %s\n want %s", i, m.position, g, want)
				}
				if got.Position != m.position {
					t.Errorf("step %d: last folded position %s, want %s", i, got.Position, m.position)
				}
			}
			// The moments differ, so the test could tell a wrong fold.
			if mustJSON(t, history[1].view) == mustJSON(t, history[3].view) {
				t.Fatal("the scripted history does not change the queue")
			}

			// The CLI form prints the same as JSON.
			var out bytes.Buffer
			at, err := ParseMoment(history[2].at.Format(time.RFC3339Nano))
			if err != nil {
				t.Fatal(err)
			}
			if err := PrintQueueAt(ctx, b.Store, &out, "alice", at, domain.Rules{}); err != nil {
				t.Fatal(err)
			}
			var printed struct {
				Queue json.RawMessage `json:"queue"`
			}
			if err := json.Unmarshal(out.Bytes(), &printed); err != nil {
				t.Fatal(err)
			}
			var compact bytes.Buffer
			_ = json.Compact(&compact, printed.Queue)
			if compact.String() != mustJSON(t, history[2].view) {
				t.Errorf("printed queue %s, want %s", compact.String(), mustJSON(t, history[2].view))
			}

			// Events listing: from a time, of some types.
			var lines bytes.Buffer
			n, err := ListEvents(ctx, b.Store, &lines, EventsQuery{Player: "alice", From: Moment{Time: history[3].at}, Types: []string{"QueueStarted", "TaskRemoved"}})
			if err != nil {
				t.Fatal(err)
			}
			if n != 2 || !strings.Contains(lines.String(), `"type":"QueueStarted"`) || !strings.Contains(lines.String(), `"type":"TaskRemoved"`) {
				t.Fatalf("events listing: %d lines\n%s", n, lines.String())
			}
		})
	}
}

// Replay to a bound builds the read models as they were into a new file;
// its queue equals what time travel folds at the same moment.
func TestReplayToBuildsTheReadModelsAsTheyWereIntoANewFile(t *testing.T) {
	ctx := context.Background()
	src := testreadside.SQLite(t)
	history := scriptedHistory(t, src.Store)
	for _, m := range []moment{history[1], history[3], history[5]} {
		for _, to := range []Moment{{Time: m.at}, {Position: m.position, HasPosition: true}} {
			into := filepath.Join(t.TempDir(), "at.db")
			var out bytes.Buffer
			res, err := ReplayTo(ctx, src.Store, &out, ReplayToOptions{
				ReplayOptions: ReplayOptions{Projection: AllProjections, Interval: 20 * time.Millisecond}, To: to, Into: into})
			if err != nil {
				t.Fatalf("replay to %s: %v\n%s", to, err, out.String())
			}
			if !strings.Contains(out.String(), "read models as of") {
				t.Errorf("replay output:\n%s", out.String())
			}
			copyStore := openSQLiteAt(t, into)
			snap, err := projections.NewReadModels(copyStore.DB).QueueSnapshot(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			want, err := QueueAt(ctx, src.Store, "alice", to, domain.Rules{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Events != want.Events {
				t.Errorf("replay to %s copied %d events, time travel folds %d", to, res.Events, want.Events)
			}
			if got, w := mustJSON(t, snap.View.Tasks), mustJSON(t, want.Queue.Tasks); got != w || snap.View.Version != want.Queue.Version {
				t.Errorf("replay to %s: read model v%d %s, time travel v%d %s", to, snap.View.Version, got, want.Queue.Version, w)
			}
		}
	}
}

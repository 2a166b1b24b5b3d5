package domain_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

// t0 is the scenarios' start time.
var t0 = time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC)

func at(ms int64) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func ptr[T any](v T) *T { return &v }

// testCatalog is small and fast to reason about.
const testCatalogJSON = `{
  "skills": [{"id": "woodcutting", "name": "Woodcutting"}, {"id": "crafting", "name": "Crafting"}],
  "items": [{"id": "logs", "name": "Logs"}, {"id": "planks", "name": "Planks"}],
  "tasks": [
    {"id": "chop-wood", "name": "Chop wood", "skill": "woodcutting", "levelRequired": 1,
     "baseDurationMs": 1000, "inputs": {}, "outputs": {"logs": 1}, "xp": 50},
    {"id": "saw-planks", "name": "Saw planks", "skill": "crafting", "levelRequired": 1,
     "baseDurationMs": 2000, "inputs": {"logs": 2}, "outputs": {"planks": 1}, "xp": 10},
    {"id": "chop-oak", "name": "Chop oak", "skill": "woodcutting", "levelRequired": 2,
     "baseDurationMs": 1000, "inputs": {}, "outputs": {"logs": 2}, "xp": 60}
  ]
}`

func testRules(t testing.TB) domain.Rules {
	t.Helper()
	c, err := domain.ParseCatalog([]byte(testCatalogJSON))
	if err != nil {
		t.Fatalf("parse test catalog: %v", err)
	}
	return domain.Rules{Catalog: c, QueueLimit: 3}
}

// given returns alice's queue with events applied.
func given(t *testing.T, events ...domain.Event) *domain.Queue {
	t.Helper()
	q := domain.NewQueue("alice", testRules(t))
	for _, e := range events {
		if err := q.Apply(e); err != nil {
			t.Fatalf("given: %v", err)
		}
	}
	return q
}

// then checks the decided events (compared as JSON, so maps and times
// compare by value) and that replaying them onto the given events rebuilds
// the decided state.
func then(t *testing.T, before *domain.Queue, q *domain.Queue, got []domain.Event, err error, want ...domain.Event) {
	t.Helper()
	if err != nil {
		t.Fatalf("decision failed: %v", err)
	}
	if g, w := eventsJSON(t, got), eventsJSON(t, want); g != w {
		t.Fatalf("events:\n got %s\nwant %s", g, w)
	}
	for _, e := range got {
		if err := before.Apply(e); err != nil {
			t.Fatalf("replay decided events: %v", err)
		}
	}
	if !before.Equal(q) {
		t.Fatalf("replayed state differs:\nreplayed %+v\n decided %+v", before.View(), q.View())
	}
}

func eventsJSON(t *testing.T, events []domain.Event) string {
	t.Helper()
	var parts []string
	for _, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, string(e.EventType())+string(b))
	}
	return "[" + strings.Join(parts, ",\n     ") + "]"
}

// Common events of the scenarios.
var (
	chopEnqueued = domain.TaskEnqueued{TaskID: "t1", Type: "chop-wood", Count: 2, Position: 0, EnqueuedAt: at(0)}
	chop1Started = domain.RepetitionStarted{TaskID: "t1", Type: "chop-wood", Number: 1, StartedAt: at(0), DueAt: at(1000),
		DurationMs: 1000, Efficiency: 1, Consumed: map[domain.ItemID]int64{}, Skill: "woodcutting", XP: 50,
		Outputs: map[domain.ItemID]int64{"logs": 1}}
	chop1Completed = domain.RepetitionCompleted{TaskID: "t1", Type: "chop-wood", Number: 1, Skill: "woodcutting", XP: 50,
		Granted: map[domain.ItemID]int64{"logs": 1}, CompletedAt: at(1000)}
	chop2Started = domain.RepetitionStarted{TaskID: "t1", Type: "chop-wood", Number: 2, StartedAt: at(1000), DueAt: at(2000),
		DurationMs: 1000, Efficiency: 1, Consumed: map[domain.ItemID]int64{}, Skill: "woodcutting", XP: 50,
		Outputs: map[domain.ItemID]int64{"logs": 1}}
	sawEnqueued = domain.TaskEnqueued{TaskID: "t2", Type: "saw-planks", Count: 1, Position: 1, EnqueuedAt: at(10)}
)

func TestEnqueueOnEmptyRunningQueueStartsFirstRepetitionAtNow(t *testing.T) {
	q := given(t)
	before := q.Clone()
	got, err := q.Enqueue("t1", "chop-wood", 2, nil, at(0))
	then(t, before, q, got, err, chopEnqueued, chop1Started)
}

func TestEnqueueBehindRunningTaskOnlyQueues(t *testing.T) {
	q := given(t, chopEnqueued, chop1Started)
	before := q.Clone()
	got, err := q.Enqueue("t2", "saw-planks", 1, nil, at(10))
	then(t, before, q, got, err, sawEnqueued)
}

func TestEnqueuePositionNeverDisplacesTheRunningHead(t *testing.T) {
	q := given(t, chopEnqueued, chop1Started, sawEnqueued)
	before := q.Clone()
	got, err := q.Enqueue("t3", "chop-wood", 1, ptr(0), at(20))
	then(t, before, q, got, err, domain.TaskEnqueued{TaskID: "t3", Type: "chop-wood", Count: 1, Position: 1, EnqueuedAt: at(20)})
	if ids := taskIDs(q); !reflect.DeepEqual(ids, []domain.TaskID{"t1", "t3", "t2"}) {
		t.Fatalf("order %v", ids)
	}
}

// A position past the end but within the limit (the client saw a longer
// queue, or one that has since moved on) appends.
func TestEnqueuePositionPastTheEndAppends(t *testing.T) {
	q := given(t, chopEnqueued, chop1Started)
	before := q.Clone()
	got, err := q.Enqueue("t2", "saw-planks", 1, ptr(2), at(10))
	then(t, before, q, got, err, sawEnqueued)
}

func TestEnqueueAtHeadOfStoppedQueue(t *testing.T) {
	q := given(t, domain.QueueStopped{At: at(0)}, domain.TaskEnqueued{TaskID: "t1", Type: "chop-wood", Count: 2, Position: 0, EnqueuedAt: at(0)})
	before := q.Clone()
	got, err := q.Enqueue("t2", "saw-planks", 1, ptr(0), at(10))
	then(t, before, q, got, err, domain.TaskEnqueued{TaskID: "t2", Type: "saw-planks", Count: 1, Position: 0, EnqueuedAt: at(10)})
	if ids := taskIDs(q); !reflect.DeepEqual(ids, []domain.TaskID{"t2", "t1"}) {
		t.Fatalf("order %v", ids)
	}
}

func taskIDs(q *domain.Queue) []domain.TaskID {
	var ids []domain.TaskID
	for _, t := range q.View().Tasks {
		ids = append(ids, t.TaskID)
	}
	return ids
}

// enqueueErrors are refused enqueues: the error, and that nothing changed.
var enqueueErrors = []struct {
	name     string
	given    []domain.Event
	id       domain.TaskID
	typ      domain.TaskTypeID
	count    int
	position *int
	is       error
	field    string
}{
	{"count zero", nil, "t1", "chop-wood", 0, nil, domain.ErrInvalid, "count"},
	{"count over 1000", nil, "t1", "chop-wood", 1001, nil, domain.ErrInvalid, "count"},
	{"negative position", nil, "t1", "chop-wood", 1, ptr(-1), domain.ErrInvalid, "position"},
	{"position at the queue limit", nil, "t1", "chop-wood", 1, ptr(3), domain.ErrInvalid, "position"},
	{"position past any queue", nil, "t1", "chop-wood", 1, ptr(2147483648), domain.ErrInvalid, "position"},
	{"unknown type", nil, "t1", "bake-bread", 1, nil, domain.ErrUnknownTaskType, "type"},
	{"bad task ID", nil, "t 1", "chop-wood", 1, nil, domain.ErrInvalid, "taskId"},
	{"duplicate task ID", []domain.Event{chopEnqueued, chop1Started}, "t1", "chop-wood", 1, nil, domain.ErrInvalid, "taskId"},
	{"level too low", nil, "t1", "chop-oak", 1, nil, domain.ErrRequirementNotMet, ""},
	{"queue full", []domain.Event{
		domain.QueueStopped{At: at(0)},
		domain.TaskEnqueued{TaskID: "a", Type: "chop-wood", Count: 1, Position: 0, EnqueuedAt: at(0)},
		domain.TaskEnqueued{TaskID: "b", Type: "chop-wood", Count: 1, Position: 1, EnqueuedAt: at(0)},
		domain.TaskEnqueued{TaskID: "c", Type: "chop-wood", Count: 1, Position: 2, EnqueuedAt: at(0)},
	}, "d", "chop-wood", 1, nil, domain.ErrQueueFull, ""},
}

func TestEnqueueRefusals(t *testing.T) {
	for _, tc := range enqueueErrors {
		t.Run(tc.name, func(t *testing.T) {
			q := given(t, tc.given...)
			before := q.Clone()
			got, err := q.Enqueue(tc.id, tc.typ, tc.count, tc.position, at(5))
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
			if got != nil {
				t.Fatalf("events %v on error", got)
			}
			if tc.field != "" {
				var ve *domain.ValidationError
				if !errors.As(err, &ve) || ve.Field != tc.field {
					t.Fatalf("error %v: want a validation error on %q", err, tc.field)
				}
			}
			if !q.Equal(before) {
				t.Fatal("a refused decision changed the queue")
			}
		})
	}
}

func TestRequirementErrorCarriesLevels(t *testing.T) {
	q := given(t)
	_, err := q.Enqueue("t1", "chop-oak", 1, nil, at(0))
	var re *domain.RequirementError
	if !errors.As(err, &re) || re.Required != 2 || re.Level != 1 || re.Skill != "woodcutting" {
		t.Fatalf("error %#v", err)
	}
}

func TestCompletionGrantsAndStartsNextRepetitionAtDueTime(t *testing.T) {
	q := given(t, chopEnqueued, chop1Started)
	before := q.Clone()
	// The processor is 700 ms late: the next repetition still starts at 1000.
	got, err := q.CompleteRepetition("t1", 1, at(1700))
	then(t, before, q, got, err, chop1Completed, chop2Started)
	if inv := q.Inventory(); inv["logs"] != 1 {
		t.Fatalf("inventory %v", inv)
	}
	if q.XP("woodcutting") != 50 {
		t.Fatalf("xp %d", q.XP("woodcutting"))
	}
}

func TestCompletionOfLastRepetitionCompletesTaskAndLevelsUp(t *testing.T) {
	q := given(t, chopEnqueued, chop1Started, chop1Completed, chop2Started)
	before := q.Clone()
	got, err := q.CompleteRepetition("t1", 2, at(2000))
	then(t, before, q, got, err,
		domain.RepetitionCompleted{TaskID: "t1", Type: "chop-wood", Number: 2, Skill: "woodcutting", XP: 50,
			Granted: map[domain.ItemID]int64{"logs": 1}, CompletedAt: at(2000)},
		domain.SkillLevelledUp{Skill: "woodcutting", Level: 2, At: at(2000)},
		domain.TaskCompleted{TaskID: "t1", Type: "chop-wood", Count: 2, At: at(2000)},
	)
	if q.Len() != 0 || q.Level("woodcutting") != 2 {
		t.Fatalf("len %d level %d", q.Len(), q.Level("woodcutting"))
	}
	if _, running := q.Repetition(); running {
		t.Fatal("a repetition runs on an empty queue")
	}
}

func TestCompletingARepetitionThatIsNotRunningIsANoOp(t *testing.T) {
	for _, tc := range []struct {
		name   string
		id     domain.TaskID
		number int
	}{{"already completed", "t1", 1}, {"not started yet", "t1", 3}, {"unknown task", "zz", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			q := given(t, chopEnqueued, chop1Started, chop1Completed, chop2Started)
			before := q.Clone()
			got, err := q.CompleteRepetition(tc.id, tc.number, at(1500))
			if err != nil || len(got) != 0 {
				t.Fatalf("got %v, %v; want no events, no error", got, err)
			}
			if !q.Equal(before) {
				t.Fatal("state changed")
			}
		})
	}
}

func TestCompletingBeforeDueTimeIsRefused(t *testing.T) {
	q := given(t, chopEnqueued, chop1Started)
	_, err := q.CompleteRepetition("t1", 1, at(999))
	if !errors.Is(err, domain.ErrRepetitionNotDue) {
		t.Fatalf("error %v", err)
	}
}

func TestRepetitionConsumesInputsAtStartAndNextTaskStartsAtDueTime(t *testing.T) {
	q := given(t,
		domain.TaskEnqueued{TaskID: "t1", Type: "chop-wood", Count: 2, Position: 0, EnqueuedAt: at(0)},
		chop1Started, sawEnqueued, chop1Completed, chop2Started,
	)
	before := q.Clone()
	got, err := q.CompleteRepetition("t1", 2, at(2000))
	then(t, before, q, got, err,
		domain.RepetitionCompleted{TaskID: "t1", Type: "chop-wood", Number: 2, Skill: "woodcutting", XP: 50,
			Granted: map[domain.ItemID]int64{"logs": 1}, CompletedAt: at(2000)},
		domain.SkillLevelledUp{Skill: "woodcutting", Level: 2, At: at(2000)},
		domain.TaskCompleted{TaskID: "t1", Type: "chop-wood", Count: 2, At: at(2000)},
		domain.RepetitionStarted{TaskID: "t2", Type: "saw-planks", Number: 1, StartedAt: at(2000), DueAt: at(4000),
			DurationMs: 2000, Efficiency: 1, Consumed: map[domain.ItemID]int64{"logs": 2}, Skill: "crafting", XP: 10,
			Outputs: map[domain.ItemID]int64{"planks": 1}},
	)
	if inv := q.Inventory(); len(inv) != 0 {
		t.Fatalf("inventory %v after consuming 2 logs", inv)
	}
}

func TestTaskWithMissingInputsFailsAndQueueMovesOn(t *testing.T) {
	q := given(t, chopEnqueued, chop1Started, sawEnqueued)
	// Remove chop-wood: saw-planks would start but there are no logs.
	before := q.Clone()
	got, err := q.Remove("t1", at(100))
	then(t, before, q, got, err,
		domain.RepetitionCancelled{TaskID: "t1", Number: 1, Refunded: map[domain.ItemID]int64{}, At: at(100)},
		domain.TaskRemoved{TaskID: "t1", Type: "chop-wood", Done: 0, At: at(100)},
		domain.TaskFailed{TaskID: "t2", Type: "saw-planks", Done: 0, Count: 1, Reason: "missing inputs: 2 logs (have 0)", At: at(100)},
	)
	if q.Len() != 0 {
		t.Fatalf("len %d", q.Len())
	}
}

// sawing is a queue sawing planks with two logs consumed.
func sawing() []domain.Event {
	return []domain.Event{
		domain.TaskEnqueued{TaskID: "c", Type: "chop-wood", Count: 3, Position: 0, EnqueuedAt: at(0)},
		domain.RepetitionStarted{TaskID: "c", Type: "chop-wood", Number: 1, StartedAt: at(0), DueAt: at(1000), DurationMs: 1000, Efficiency: 1,
			Consumed: map[domain.ItemID]int64{}, Skill: "woodcutting", XP: 1, Outputs: map[domain.ItemID]int64{"logs": 3}},
		domain.RepetitionCompleted{TaskID: "c", Type: "chop-wood", Number: 1, Skill: "woodcutting", XP: 1,
			Granted: map[domain.ItemID]int64{"logs": 3}, CompletedAt: at(1000)},
		domain.TaskEnqueued{TaskID: "s", Type: "saw-planks", Count: 5, Position: 0, EnqueuedAt: at(1000)},
		domain.TaskEnqueued{TaskID: "w", Type: "chop-wood", Count: 1, Position: 2, EnqueuedAt: at(1000)},
		domain.TaskRemoved{TaskID: "c", Type: "chop-wood", Done: 1, At: at(1000)},
		domain.RepetitionStarted{TaskID: "s", Type: "saw-planks", Number: 1, StartedAt: at(1000), DueAt: at(3000), DurationMs: 2000, Efficiency: 1,
			Consumed: map[domain.ItemID]int64{"logs": 2}, Skill: "crafting", XP: 10, Outputs: map[domain.ItemID]int64{"planks": 1}},
	}
}

func TestRemovingRunningTaskRefundsItsInputsAndStartsNextAtNow(t *testing.T) {
	q := given(t, sawing()...)
	if q.Inventory()["logs"] != 1 {
		t.Fatalf("given inventory %v", q.Inventory())
	}
	before := q.Clone()
	got, err := q.Remove("s", at(1500))
	then(t, before, q, got, err,
		domain.RepetitionCancelled{TaskID: "s", Number: 1, Refunded: map[domain.ItemID]int64{"logs": 2}, At: at(1500)},
		domain.TaskRemoved{TaskID: "s", Type: "saw-planks", Done: 0, At: at(1500)},
		domain.RepetitionStarted{TaskID: "w", Type: "chop-wood", Number: 1, StartedAt: at(1500), DueAt: at(2500), DurationMs: 1000, Efficiency: 1,
			Consumed: map[domain.ItemID]int64{}, Skill: "woodcutting", XP: 50, Outputs: map[domain.ItemID]int64{"logs": 1}},
	)
	if q.Inventory()["logs"] != 3 {
		t.Fatalf("inventory %v after refund", q.Inventory())
	}
}

func TestRemovingWaitingTask(t *testing.T) {
	q := given(t, sawing()...)
	before := q.Clone()
	got, err := q.Remove("w", at(1500))
	then(t, before, q, got, err, domain.TaskRemoved{TaskID: "w", Type: "chop-wood", Done: 0, At: at(1500)})
}

func TestRemovingUnknownTaskIsNotFound(t *testing.T) {
	q := given(t, sawing()...)
	if _, err := q.Remove("nope", at(1500)); !errors.Is(err, domain.ErrTaskNotFound) {
		t.Fatalf("error %v", err)
	}
}

func TestStopCancelsAndRefundsAndKeepsHeadStartResumesIt(t *testing.T) {
	q := given(t, sawing()...)
	before := q.Clone()
	got, err := q.Stop("", at(1500))
	then(t, before, q, got, err,
		domain.RepetitionCancelled{TaskID: "s", Number: 1, Refunded: map[domain.ItemID]int64{"logs": 2}, At: at(1500)},
		domain.QueueStopped{Reason: "", At: at(1500)},
	)
	v := q.View()
	if v.Running || v.Repetition != nil || v.Tasks[0].TaskID != "s" || v.Tasks[0].Count-v.Tasks[0].Done != 5 {
		t.Fatalf("view after stop %+v", v)
	}
	before = q.Clone()
	got, err = q.Start(at(5000))
	then(t, before, q, got, err,
		domain.QueueStarted{At: at(5000)},
		domain.RepetitionStarted{TaskID: "s", Type: "saw-planks", Number: 1, StartedAt: at(5000), DueAt: at(7000), DurationMs: 2000, Efficiency: 1,
			Consumed: map[domain.ItemID]int64{"logs": 2}, Skill: "crafting", XP: 10, Outputs: map[domain.ItemID]int64{"planks": 1}},
	)
}

func TestStopWithReasonIsShownAndStartClearsIt(t *testing.T) {
	q := given(t, sawing()...)
	if _, err := q.Stop("offline for more than 12h", at(1500)); err != nil {
		t.Fatal(err)
	}
	if v := q.View(); v.StoppedReason != "offline for more than 12h" {
		t.Fatalf("stoppedReason %q", v.StoppedReason)
	}
	if _, err := q.Start(at(1600)); err != nil {
		t.Fatal(err)
	}
	if v := q.View(); v.StoppedReason != "" || !v.Running {
		t.Fatalf("after start %+v", v)
	}
}

func TestStopStoppedAndStartRunningDecideNothing(t *testing.T) {
	q := given(t, domain.QueueStopped{At: at(0)})
	if got, err := q.Stop("", at(1)); err != nil || len(got) != 0 {
		t.Fatalf("stop stopped: %v %v", got, err)
	}
	q = given(t)
	if got, err := q.Start(at(1)); err != nil || len(got) != 0 {
		t.Fatalf("start running: %v %v", got, err)
	}
}

func TestStopAfterDueTimeCompletesFirst(t *testing.T) {
	q := given(t, chopEnqueued, chop1Started)
	before := q.Clone()
	got, err := q.Stop("", at(1500))
	then(t, before, q, got, err,
		chop1Completed, chop2Started,
		domain.RepetitionCancelled{TaskID: "t1", Number: 2, Refunded: map[domain.ItemID]int64{}, At: at(1500)},
		domain.QueueStopped{At: at(1500)},
	)
}

func TestReorderPermutesWaitingTasks(t *testing.T) {
	q := given(t, sawing()...)
	q2 := q.Clone()
	if _, err := q2.Enqueue("x", "chop-wood", 1, nil, at(1100)); err != nil {
		t.Fatal(err)
	}
	before := q2.Clone()
	got, err := q2.Reorder([]domain.TaskID{"x", "w"}, at(1200))
	then(t, before, q2, got, err, domain.TasksReordered{Order: []domain.TaskID{"x", "w"}, At: at(1200)})
	if ids := taskIDs(q2); !reflect.DeepEqual(ids, []domain.TaskID{"s", "x", "w"}) {
		t.Fatalf("order %v", ids)
	}
	if got, err := q2.Reorder([]domain.TaskID{"x", "w"}, at(1300)); err != nil || len(got) != 0 {
		t.Fatalf("same order: %v %v", got, err)
	}
}

func TestReorderOfStoppedQueueMayChangeTheHead(t *testing.T) {
	q := given(t, sawing()...)
	if _, err := q.Stop("", at(1100)); err != nil {
		t.Fatal(err)
	}
	before := q.Clone()
	got, err := q.Reorder([]domain.TaskID{"w", "s"}, at(1200))
	then(t, before, q, got, err, domain.TasksReordered{Order: []domain.TaskID{"w", "s"}, At: at(1200)})
}

func TestReorderRefusesWhatIsNotAPermutation(t *testing.T) {
	for _, order := range [][]domain.TaskID{
		{"w"}, {"s"}, {"w", "w"}, {"w", "nope"}, {"s", "w"}, nil,
	} {
		q := given(t, sawing()...)
		if _, err := q.Enqueue("x", "chop-wood", 1, nil, at(1100)); err != nil {
			t.Fatal(err)
		}
		before := q.Clone()
		_, err := q.Reorder(order, at(1200))
		var ve *domain.ValidationError
		if !errors.As(err, &ve) || ve.Field != "order" || !errors.Is(err, domain.ErrInvalid) {
			t.Fatalf("order %v: error %v", order, err)
		}
		if !q.Equal(before) {
			t.Fatalf("order %v changed the queue", order)
		}
	}
}

func TestFailRunningTaskRefundsAndMovesOn(t *testing.T) {
	q := given(t, sawing()...)
	before := q.Clone()
	got, err := q.Fail("s", "admin cancelled it", at(1500))
	then(t, before, q, got, err,
		domain.RepetitionCancelled{TaskID: "s", Number: 1, Refunded: map[domain.ItemID]int64{"logs": 2}, At: at(1500)},
		domain.TaskFailed{TaskID: "s", Type: "saw-planks", Done: 0, Count: 5, Reason: "admin cancelled it", At: at(1500)},
		domain.RepetitionStarted{TaskID: "w", Type: "chop-wood", Number: 1, StartedAt: at(1500), DueAt: at(2500), DurationMs: 1000, Efficiency: 1,
			Consumed: map[domain.ItemID]int64{}, Skill: "woodcutting", XP: 50, Outputs: map[domain.ItemID]int64{"logs": 1}},
	)
	if _, err := q.Fail("nope", "x", at(1600)); !errors.Is(err, domain.ErrTaskNotFound) {
		t.Fatalf("fail unknown: %v", err)
	}
	if _, err := q.Fail("w", "", at(1600)); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("fail without reason: %v", err)
	}
}

func TestTaskTypeGoneFromCatalogFailsWhenItWouldStart(t *testing.T) {
	q := given(t, domain.QueueStopped{At: at(0)},
		domain.TaskEnqueued{TaskID: "old", Type: "fletch-arrows", Count: 3, Position: 0, EnqueuedAt: at(0)},
		domain.TaskEnqueued{TaskID: "t1", Type: "chop-wood", Count: 2, Position: 1, EnqueuedAt: at(0)},
	)
	before := q.Clone()
	got, err := q.Start(at(0))
	then(t, before, q, got, err,
		domain.QueueStarted{At: at(0)},
		domain.TaskFailed{TaskID: "old", Type: "fletch-arrows", Count: 3, Reason: `task type "fletch-arrows" is no longer in the catalog`, At: at(0)},
		chop1Started,
	)
}

func TestHigherLevelMakesRepetitionsFasterUpToHalf(t *testing.T) {
	for _, tc := range []struct {
		xp         int64
		durationMs int64
		efficiency float64
	}{
		{0, 1000, 1},
		{domain.XPForLevel(6), 950, 1.05},
		{domain.XPForLevel(51), 500, 2},
		{domain.XPForLevel(99) + 1e6, 500, 2},
	} {
		q := given(t,
			domain.TaskEnqueued{TaskID: "x", Type: "chop-wood", Count: 1, Position: 0, EnqueuedAt: at(0)},
			domain.RepetitionStarted{TaskID: "x", Type: "chop-wood", Number: 1, StartedAt: at(0), DueAt: at(1), DurationMs: 1, Efficiency: 1,
				Skill: "woodcutting", XP: tc.xp},
		)
		if _, err := q.CompleteRepetition("x", 1, at(1)); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Enqueue("y", "chop-wood", 1, nil, at(10)); err != nil {
			t.Fatal(err)
		}
		r, ok := q.Repetition()
		if !ok || r.DurationMs != tc.durationMs || r.Efficiency != tc.efficiency || !r.DueAt.Equal(at(10+tc.durationMs)) {
			t.Fatalf("xp %d: repetition %+v, want %d ms, efficiency %v", tc.xp, r, tc.durationMs, tc.efficiency)
		}
	}
}

func TestAdvanceCatchesUpOfflineProgressAtDueTimes(t *testing.T) {
	q := given(t)
	if _, err := q.Enqueue("t1", "chop-wood", 5, nil, at(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue("t2", "saw-planks", 2, nil, at(0)); err != nil {
		t.Fatal(err)
	}
	// Offline for an hour: 5 chops then 2 saws are done, each starting at
	// the previous one's due time, faster as woodcutting levels up: 1000 and
	// 1000 ms (level 1), 990 and 990 (level 2 at 100 XP), 980 (level 3 at
	// 200 XP), then 2000 and 2000 ms of sawing.
	got, err := q.Advance(at(3_600_000))
	if err != nil {
		t.Fatal(err)
	}
	if q.Len() != 0 || q.Inventory()["planks"] != 2 || q.Inventory()["logs"] != 1 {
		t.Fatalf("after catch-up: %+v", q.View())
	}
	last := got[len(got)-1]
	if tc, ok := last.(domain.TaskCompleted); !ok || !tc.At.Equal(at(1000+1000+990+990+980+2000+2000)) {
		t.Fatalf("last event %#v, want TaskCompleted at 8.96 s", last)
	}
}

func TestApplyRejectsEventsThatDoNotFit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []domain.Event
	}{
		{"remove unknown task", []domain.Event{domain.TaskRemoved{TaskID: "x"}}},
		{"start a repetition with missing inputs", []domain.Event{
			domain.TaskEnqueued{TaskID: "x", Type: "saw-planks", Count: 1, Position: 0, EnqueuedAt: at(0)},
			domain.RepetitionStarted{TaskID: "x", Number: 1, Consumed: map[domain.ItemID]int64{"logs": 2}}}},
		{"complete what is not running", []domain.Event{chopEnqueued, chop1Completed}},
		{"enqueue in front of a running head", []domain.Event{chopEnqueued, chop1Started,
			domain.TaskEnqueued{TaskID: "y", Type: "chop-wood", Count: 1, Position: 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := domain.NewQueue("alice", testRules(t))
			var err error
			for _, e := range tc.events {
				if err = q.Apply(e); err != nil {
					break
				}
			}
			if !errors.Is(err, domain.ErrInconsistentEvent) {
				t.Fatalf("error %v", err)
			}
		})
	}
}

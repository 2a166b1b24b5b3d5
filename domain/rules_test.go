package domain_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

func TestDefaultQueueLimitIsTen(t *testing.T) {
	q := domain.NewQueue("bob", domain.Rules{})
	for i := range 10 {
		if _, err := q.Enqueue(domain.TaskID(fmt.Sprint("t", i)), "chop-wood", 1, nil, at(0)); err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
	}
	if _, err := q.Enqueue("t10", "chop-wood", 1, nil, at(0)); !errors.Is(err, domain.ErrQueueFull) {
		t.Fatalf("eleventh task: %v", err)
	}
	if q.View().Limit != 10 {
		t.Fatalf("limit %d", q.View().Limit)
	}
}

func TestRulesValidate(t *testing.T) {
	for _, limit := range []int{-1, domain.MaxQueueLimit + 1} {
		if err := (domain.Rules{QueueLimit: limit}).Validate(); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("limit %d: %v", limit, err)
		}
	}
	if err := (domain.Rules{QueueLimit: 0}).Validate(); err != nil {
		t.Errorf("default limit: %v", err)
	}
}

func TestEnqueueOnStoppedQueueStartsNothing(t *testing.T) {
	q := given(t, domain.QueueStopped{At: at(0)})
	before := q.Clone()
	got, err := q.Enqueue("t1", "chop-wood", 2, nil, at(5))
	then(t, before, q, got, err, domain.TaskEnqueued{TaskID: "t1", Type: "chop-wood", Count: 2, Position: 0, EnqueuedAt: at(5)})
}

func TestRemovingHeadOfStoppedQueueStartsNothing(t *testing.T) {
	q := given(t, sawing()...)
	if _, err := q.Stop("", at(1100)); err != nil {
		t.Fatal(err)
	}
	before := q.Clone()
	got, err := q.Remove("s", at(1200))
	then(t, before, q, got, err, domain.TaskRemoved{TaskID: "s", Type: "saw-planks", Done: 0, At: at(1200)})
	if _, running := q.Repetition(); running {
		t.Fatal("a stopped queue started a repetition")
	}
}

func TestFailWaitingTask(t *testing.T) {
	q := given(t, sawing()...)
	before := q.Clone()
	got, err := q.Fail("w", "no longer wanted", at(1500))
	then(t, before, q, got, err, domain.TaskFailed{TaskID: "w", Type: "chop-wood", Done: 0, Count: 1, Reason: "no longer wanted", At: at(1500)})
}

func TestRaisedLevelRequirementFailsTaskWhenItWouldStart(t *testing.T) {
	// Queued under a catalog where chop-oak needed level 1; the current
	// catalog wants level 2.
	q := given(t, domain.QueueStopped{At: at(0)},
		domain.TaskEnqueued{TaskID: "oak", Type: "chop-oak", Count: 1, Position: 0, EnqueuedAt: at(0)})
	before := q.Clone()
	got, err := q.Start(at(10))
	then(t, before, q, got, err,
		domain.QueueStarted{At: at(10)},
		domain.TaskFailed{TaskID: "oak", Type: "chop-oak", Count: 1, Reason: "chop-oak needs woodcutting level 2, the player has level 1", At: at(10)},
	)
}

func TestRunningRepetitionKeepsTheRewardsItStartedWith(t *testing.T) {
	// The repetition started when chop-wood granted 7 logs and 500 XP.
	q := given(t,
		domain.TaskEnqueued{TaskID: "x", Type: "chop-wood", Count: 1, Position: 0, EnqueuedAt: at(0)},
		domain.RepetitionStarted{TaskID: "x", Type: "chop-wood", Number: 1, StartedAt: at(0), DueAt: at(1000), DurationMs: 1000, Efficiency: 1,
			Skill: "woodcutting", XP: 500, Outputs: map[domain.ItemID]int64{"logs": 7}},
	)
	if _, err := q.CompleteRepetition("x", 1, at(1000)); err != nil {
		t.Fatal(err)
	}
	if q.Inventory()["logs"] != 7 || q.XP("woodcutting") != 500 {
		t.Fatalf("inventory %v xp %d", q.Inventory(), q.XP("woodcutting"))
	}
}

func TestOneDecisionCompletesAtMostMaxCatchUp(t *testing.T) {
	q := given(t)
	if _, err := q.Enqueue("t1", "chop-wood", domain.MaxCount, nil, at(0)); err != nil {
		t.Fatal(err)
	}
	far := at(1_000_000_000)
	if _, err := q.Advance(far); err != nil {
		t.Fatal(err)
	}
	v, _ := q.Task("t1")
	if v.Done != domain.MaxCatchUp {
		t.Fatalf("done %d after one decision, want %d", v.Done, domain.MaxCatchUp)
	}
	for range domain.MaxCount / domain.MaxCatchUp {
		if _, err := q.Advance(far); err != nil {
			t.Fatal(err)
		}
	}
	if q.Len() != 0 || q.Inventory()["logs"] != domain.MaxCount {
		t.Fatalf("after catching up: %+v", q.View())
	}
}

func TestDecisionsRefuseTheZeroTime(t *testing.T) {
	q := given(t)
	if _, err := q.Start(time.Time{}); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("zero time: %v", err)
	}
}

func TestDecisionsKeepTimesInUTCMilliseconds(t *testing.T) {
	q := given(t)
	local := time.Date(2026, 11, 29, 15, 0, 0, 123456789, time.FixedZone("CET", 3600))
	if _, err := q.Enqueue("t1", "chop-wood", 1, nil, local); err != nil {
		t.Fatal(err)
	}
	r, _ := q.Repetition()
	if r.StartedAt.Location() != time.UTC || !r.StartedAt.Equal(at(123)) {
		t.Fatalf("startedAt %v", r.StartedAt)
	}
}

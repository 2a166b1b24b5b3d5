package domain_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

func restoreThroughJSON(t *testing.T, s domain.QueueSnapshot, rules domain.Rules) *domain.Queue {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back domain.QueueSnapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	q, err := domain.RestoreQueue(back, rules)
	if err != nil {
		t.Fatalf("restore %s: %v", b, err)
	}
	return q
}

// goldenQueue is a queue that went through every kind of event.
func goldenQueue(t *testing.T) *domain.Queue {
	t.Helper()
	rules := domain.Rules{Catalog: domain.DefaultCatalog()}
	q := domain.NewQueue("golden", rules)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	step := func(events []domain.Event, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	types := rules.Catalog.Tasks()
	if types[0].ID != "chop-wood" {
		t.Fatalf("the default catalog's first task is %s", types[0].ID)
	}
	step(q.Enqueue("a", types[0].ID, 3, nil, now))
	step(q.Enqueue("b", types[0].ID, 2, nil, now))
	step(q.Enqueue("c", types[0].ID, 1, nil, now))
	step(q.Advance(now.Add(time.Hour)))
	step(q.Enqueue("d", types[0].ID, 5, nil, now.Add(time.Hour)))
	step(q.Enqueue("e", types[0].ID, 4, nil, now.Add(time.Hour)))
	step(q.Remove("e", now.Add(time.Hour)))
	step(q.Stop("lunch", now.Add(2*time.Hour)))
	step(q.Start(now.Add(3 * time.Hour)))
	// saw-planks consumes logs: a repetition with inputs, one done.
	later := now.Add(3 * time.Hour)
	step(q.Enqueue("f", "saw-planks", 4, nil, later))
	step(q.Enqueue("g", "chop-wood", 2, nil, later))
	step(q.Advance(later.Add(2500 * time.Millisecond)))
	return q
}

// A snapshot taken by this version of the domain reads back as the same
// queue. The golden file holds the snapshot of goldenQueue for the current
// SnapshotSchema: when the state or the way events apply changes, this
// fails until SnapshotSchema is raised (and the file written again with
// TASKQUEUE_UPDATE_GOLDEN=1), so snapshots stored by the old version are
// not taken for new ones.
func TestSnapshotSchemaIsCurrent(t *testing.T) {
	q := goldenQueue(t)
	got, err := json.MarshalIndent(q.Snapshot(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "snapshot-v"+strconv.Itoa(domain.SnapshotSchema)+".json")
	if os.Getenv("TASKQUEUE_UPDATE_GOLDEN") == "1" {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no golden snapshot for schema %d (%v): raise SnapshotSchema only with a new golden file", domain.SnapshotSchema, err)
	}
	if string(want) != string(got)+"\n" {
		t.Fatalf("the queue's snapshot changed, but SnapshotSchema is still %d: raise it (old snapshots would be taken for new ones), then write %s with TASKQUEUE_UPDATE_GOLDEN=1.\ngot:\n%s", domain.SnapshotSchema, path, got)
	}
	if restored := restoreThroughJSON(t, q.Snapshot(), domain.Rules{}); !restored.Equal(q) {
		t.Fatal("the golden queue restored from its snapshot differs")
	}
}

// A snapshot no queue could have had is refused, not restored.
func TestRestoreRefusesAnImpossibleSnapshot(t *testing.T) {
	good := goldenQueue(t).Snapshot()
	for name, damage := range map[string]func(s *domain.QueueSnapshot){
		"bad player":          func(s *domain.QueueSnapshot) { s.Player = "" },
		"negative version":    func(s *domain.QueueSnapshot) { s.Version = -1 },
		"repetition off head": func(s *domain.QueueSnapshot) { s.Repetition.TaskID = "nope" },
		"count out of range":  func(s *domain.QueueSnapshot) { s.Tasks[0].Count = 0 },
		"done past count":     func(s *domain.QueueSnapshot) { s.Tasks[0].Done = s.Tasks[0].Count },
	} {
		s := good
		s.Tasks = append([]domain.SnapshotTask(nil), good.Tasks...)
		rep := *good.Repetition
		s.Repetition = &rep
		damage(&s)
		if _, err := domain.RestoreQueue(s, domain.Rules{}); err == nil {
			t.Errorf("%s: restored", name)
		}
	}
}

package domain

import (
	"fmt"
	"maps"
	"time"
)

// SnapshotSchema versions QueueSnapshot: what a Queue's state holds and
// what applying an event does to it. Change it whenever either changes, so
// that snapshots taken by an older version are ignored and the queue is
// rebuilt from its stream (TestSnapshotSchemaIsCurrent fails until then).
const SnapshotSchema = 1

// QueueSnapshot is a Queue's whole state, to store beside its stream so a
// long stream need not be read from the start: restoring it and applying
// the events after Version gives the queue that applying every event
// gives. JSON, times in UTC to the millisecond.
type QueueSnapshot struct {
	Player        PlayerID          `json:"player"`
	Version       int64             `json:"version"`
	Tasks         []SnapshotTask    `json:"tasks"`
	Stopped       bool              `json:"stopped,omitempty"`
	StoppedReason string            `json:"stoppedReason,omitempty"`
	Repetition    *SnapshotRepeat   `json:"repetition,omitempty"`
	XP            map[SkillID]int64 `json:"xp,omitempty"`
	Inventory     map[ItemID]int64  `json:"inventory,omitempty"`
	UpdatedAt     time.Time         `json:"updatedAt"`
}

// SnapshotTask is a queued task of a QueueSnapshot.
type SnapshotTask struct {
	ID         TaskID     `json:"id"`
	Type       TaskTypeID `json:"type"`
	Count      int        `json:"count"`
	Done       int        `json:"done"`
	EnqueuedAt time.Time  `json:"enqueuedAt"`
}

// SnapshotRepeat is the running repetition of a QueueSnapshot.
type SnapshotRepeat struct {
	TaskID     TaskID           `json:"taskId"`
	Number     int              `json:"number"`
	StartedAt  time.Time        `json:"startedAt"`
	DueAt      time.Time        `json:"dueAt"`
	DurationMs int64            `json:"durationMs"`
	Efficiency float64          `json:"efficiency"`
	Consumed   map[ItemID]int64 `json:"consumed,omitempty"`
	Skill      SkillID          `json:"skill"`
	XP         int64            `json:"xp"`
	Outputs    map[ItemID]int64 `json:"outputs,omitempty"`
}

// Snapshot returns q's state.
func (q *Queue) Snapshot() QueueSnapshot {
	s := QueueSnapshot{
		Player: q.player, Version: q.version, Tasks: make([]SnapshotTask, len(q.tasks)),
		Stopped: q.stopped, StoppedReason: q.stoppedReason,
		XP: nonZero(q.xp), Inventory: nonZero(q.inventory), UpdatedAt: q.updatedAt,
	}
	for i, t := range q.tasks {
		s.Tasks[i] = SnapshotTask{ID: t.id, Type: t.typ, Count: t.count, Done: t.done, EnqueuedAt: t.enqueuedAt}
	}
	if r := q.rep; r != nil {
		s.Repetition = &SnapshotRepeat{
			TaskID: r.taskID, Number: r.number, StartedAt: r.startedAt, DueAt: r.dueAt, DurationMs: r.durationMs,
			Efficiency: r.efficiency, Consumed: maps.Clone(r.consumed), Skill: r.skill, XP: r.xp, Outputs: maps.Clone(r.outputs),
		}
	}
	return s
}

// RestoreQueue returns the queue of snapshot s, deciding by rules. It
// refuses a snapshot that no queue could have had (a repetition of a task
// that is not the head, a count out of range), which a stored snapshot
// damaged or of another version would be.
func RestoreQueue(s QueueSnapshot, rules Rules) (*Queue, error) {
	if _, err := ParsePlayerID(string(s.Player)); err != nil {
		return nil, fmt.Errorf("restore queue: %w", err)
	}
	if s.Version < 0 {
		return nil, fmt.Errorf("restore queue %s: version %d", s.Player, s.Version)
	}
	q := NewQueue(s.Player, rules)
	q.version, q.stopped, q.stoppedReason, q.updatedAt = s.Version, s.Stopped, s.StoppedReason, s.UpdatedAt.UTC()
	maps.Copy(q.xp, s.XP)
	maps.Copy(q.inventory, s.Inventory)
	for _, t := range s.Tasks {
		if t.ID == "" || t.Count < MinCount || t.Count > MaxCount || t.Done < 0 || t.Done >= t.Count {
			return nil, fmt.Errorf("restore queue %s: task %+v is not a queued task", s.Player, t)
		}
		q.tasks = append(q.tasks, task{id: t.ID, typ: t.Type, count: t.Count, done: t.Done, enqueuedAt: t.EnqueuedAt.UTC()})
	}
	if r := s.Repetition; r != nil {
		if len(q.tasks) == 0 || q.tasks[0].id != r.TaskID {
			return nil, fmt.Errorf("restore queue %s: repetition of %s, which is not the head", s.Player, r.TaskID)
		}
		q.rep = &repetition{
			taskID: r.TaskID, number: r.Number, startedAt: r.StartedAt.UTC(), dueAt: r.DueAt.UTC(), durationMs: r.DurationMs,
			efficiency: r.Efficiency, consumed: orEmpty(r.Consumed), skill: r.Skill, xp: r.XP, outputs: orEmpty(r.Outputs),
		}
	}
	return q, nil
}

func orEmpty[K comparable](m map[K]int64) map[K]int64 {
	if m == nil {
		return map[K]int64{}
	}
	return maps.Clone(m)
}

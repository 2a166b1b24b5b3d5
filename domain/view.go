package domain

import (
	"encoding/json"
	"time"
)

// QueueView is a snapshot of a queue as GET /api/queue/{playerId} shows it
// (docs/API.md, "The queue view"), without "serverTime", which the web
// layer adds. It marshals to exactly that JSON: tasks is [] when empty,
// repetition is null when none runs, updatedAt is null for a queue that
// never had an event. Changing a JSON name here breaks every client.
type QueueView struct {
	PlayerID      PlayerID              `json:"playerId"`
	Version       int64                 `json:"version"`
	Running       bool                  `json:"running"`
	StoppedReason string                `json:"stoppedReason"`
	Limit         int                   `json:"limit"`
	Tasks         []TaskView            `json:"tasks"`
	Repetition    *RepetitionView       `json:"repetition"`
	Skills        map[SkillID]SkillView `json:"skills"`
	Inventory     map[ItemID]int64      `json:"inventory"`
	UpdatedAt     *time.Time            `json:"updatedAt"`
}

// TaskView is one task of the queue view; also the body POST .../tasks
// returns.
type TaskView struct {
	TaskID     TaskID     `json:"taskId"`
	Type       TaskTypeID `json:"type"`
	Count      int        `json:"count"`
	Done       int        `json:"done"`
	EnqueuedAt time.Time  `json:"enqueuedAt"`
}

// RepetitionView is the running repetition of the head task.
type RepetitionView struct {
	TaskID     TaskID    `json:"taskId"`
	Number     int       `json:"number"`
	StartedAt  time.Time `json:"startedAt"`
	DueAt      time.Time `json:"dueAt"`
	DurationMs int64     `json:"durationMs"`
	Efficiency float64   `json:"efficiency"`
}

// SkillView is the player's standing in one skill.
type SkillView struct {
	XP    int64 `json:"xp"`
	Level int   `json:"level"`
}

// View returns the snapshot of q. Skills lists the skills the player has
// XP in (a missing skill is level 1 with 0 XP); inventory the items held.
func (q *Queue) View() QueueView {
	v := QueueView{
		PlayerID:      q.player,
		Version:       q.version,
		Running:       !q.stopped,
		StoppedReason: q.stoppedReason,
		Limit:         q.rules.limit(),
		Tasks:         make([]TaskView, len(q.tasks)),
		Skills:        map[SkillID]SkillView{},
		Inventory:     nonZero(q.inventory),
	}
	for i, t := range q.tasks {
		v.Tasks[i] = t.view()
	}
	if q.rep != nil {
		r := q.rep.view()
		v.Repetition = &r
	}
	for s, xp := range q.xp {
		if xp > 0 {
			v.Skills[s] = SkillView{XP: xp, Level: LevelForXP(xp)}
		}
	}
	if !q.updatedAt.IsZero() {
		at := q.updatedAt
		v.UpdatedAt = &at
	}
	return v
}

func (t task) view() TaskView {
	return TaskView{TaskID: t.id, Type: t.typ, Count: t.count, Done: t.done, EnqueuedAt: t.enqueuedAt}
}

func (r *repetition) view() RepetitionView {
	return RepetitionView{
		TaskID: r.taskID, Number: r.number, StartedAt: r.startedAt, DueAt: r.dueAt,
		DurationMs: r.durationMs, Efficiency: r.efficiency,
	}
}

// MarshalJSON writes the view with nil slices and maps as [] and {}, so a
// zero QueueView still has the documented shape.
func (v QueueView) MarshalJSON() ([]byte, error) {
	type plain QueueView
	p := plain(v)
	if p.Tasks == nil {
		p.Tasks = []TaskView{}
	}
	if p.Skills == nil {
		p.Skills = map[SkillID]SkillView{}
	}
	if p.Inventory == nil {
		p.Inventory = map[ItemID]int64{}
	}
	return json.Marshal(p)
}

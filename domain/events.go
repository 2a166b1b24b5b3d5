package domain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// EventType is the stable name of a domain event. The names are stored in
// the event log and read by projections, the relay and clients: renaming
// one makes every stored event of that type unreadable.
type EventType string

// The event types of a queue stream.
const (
	TypeTaskEnqueued        EventType = "TaskEnqueued"
	TypeTaskRemoved         EventType = "TaskRemoved"
	TypeTasksReordered      EventType = "TasksReordered"
	TypeQueueStopped        EventType = "QueueStopped"
	TypeQueueStarted        EventType = "QueueStarted"
	TypeRepetitionStarted   EventType = "RepetitionStarted"
	TypeRepetitionCompleted EventType = "RepetitionCompleted"
	TypeRepetitionCancelled EventType = "RepetitionCancelled"
	TypeTaskCompleted       EventType = "TaskCompleted"
	TypeTaskFailed          EventType = "TaskFailed"
	TypeSkillLevelledUp     EventType = "SkillLevelledUp"
)

// schemaVersions is the current schema version of every event type. Bump a
// version only together with an upcast from the old one in decoders.
var schemaVersions = map[EventType]int{
	TypeTaskEnqueued:        1,
	TypeTaskRemoved:         1,
	TypeTasksReordered:      1,
	TypeQueueStopped:        2,
	TypeQueueStarted:        1,
	TypeRepetitionStarted:   1,
	TypeRepetitionCompleted: 1,
	TypeRepetitionCancelled: 1,
	TypeTaskCompleted:       1,
	TypeTaskFailed:          1,
	TypeSkillLevelledUp:     1,
}

// EventTypes returns every event type, in a fixed order.
func EventTypes() []EventType { return sortedKeys(schemaVersions) }

// Valid reports whether t is one of the event types.
func (t EventType) Valid() bool { _, ok := schemaVersions[t]; return ok }

// SchemaVersion returns the version of t's schema that this code writes
// (0 for an unknown type).
func (t EventType) SchemaVersion() int { return schemaVersions[t] }

// Event is a domain event of a queue stream. The set is closed: only the
// types of this package implement it. An event's maps are read only:
// events share them (a decision's with the catalog, decoded events with
// one another), so a reader that needs to change one clones it.
type Event interface {
	// EventType returns the event's stable name.
	EventType() EventType
	// OccurredAt is when the event happened in the game (UTC, whole ms).
	OccurredAt() time.Time
	isEvent()
}

// TaskEnqueued: a task joined the queue at index Position of the tasks.
type TaskEnqueued struct {
	TaskID     TaskID     `json:"taskId"`
	Type       TaskTypeID `json:"type"`
	Count      int        `json:"count"`
	Position   int        `json:"position"`
	EnqueuedAt time.Time  `json:"enqueuedAt"`
}

// TaskRemoved: the player removed a task (after its running repetition, if
// any, was cancelled by a RepetitionCancelled).
type TaskRemoved struct {
	TaskID TaskID     `json:"taskId"`
	Type   TaskTypeID `json:"type"`
	Done   int        `json:"done"`
	At     time.Time  `json:"at"`
}

// TasksReordered: the tasks that are not running are now in Order (the
// running task, if any, stays first).
type TasksReordered struct {
	Order []TaskID  `json:"order"`
	At    time.Time `json:"at"`
}

// QueueStopped: the queue no longer advances. Reason is empty when the
// player stopped it, else it says why the server did (schema v2; v1 had no
// reason and is upcast with an empty one).
type QueueStopped struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// QueueStarted: the queue advances again.
type QueueStarted struct {
	At time.Time `json:"at"`
}

// RepetitionStarted: repetition Number (from 1) of the head task started,
// consuming Consumed from the inventory; it is due at DueAt. Skill, XP and
// Outputs are what its completion will grant, fixed when it starts (a
// catalog change never changes a running repetition).
type RepetitionStarted struct {
	TaskID     TaskID           `json:"taskId"`
	Type       TaskTypeID       `json:"type"`
	Number     int              `json:"number"`
	StartedAt  time.Time        `json:"startedAt"`
	DueAt      time.Time        `json:"dueAt"`
	DurationMs int64            `json:"durationMs"`
	Efficiency float64          `json:"efficiency"`
	Consumed   map[ItemID]int64 `json:"consumed"`
	Skill      SkillID          `json:"skill"`
	XP         int64            `json:"xp"`
	Outputs    map[ItemID]int64 `json:"outputs"`
}

// RepetitionCompleted: the running repetition finished at CompletedAt (its
// due time) and granted Granted items and XP in Skill.
type RepetitionCompleted struct {
	TaskID      TaskID           `json:"taskId"`
	Type        TaskTypeID       `json:"type"`
	Number      int              `json:"number"`
	Skill       SkillID          `json:"skill"`
	XP          int64            `json:"xp"`
	Granted     map[ItemID]int64 `json:"granted"`
	CompletedAt time.Time        `json:"completedAt"`
}

// RepetitionCancelled: the running repetition stopped before its due time
// (task removed or failed, queue stopped) and Refunded went back to the
// inventory.
type RepetitionCancelled struct {
	TaskID   TaskID           `json:"taskId"`
	Number   int              `json:"number"`
	Refunded map[ItemID]int64 `json:"refunded"`
	At       time.Time        `json:"at"`
}

// TaskCompleted: the head task's last repetition completed; it left the
// queue.
type TaskCompleted struct {
	TaskID TaskID     `json:"taskId"`
	Type   TaskTypeID `json:"type"`
	Count  int        `json:"count"`
	At     time.Time  `json:"at"`
}

// TaskFailed: a task left the queue without completing, for Reason (inputs
// missing when a repetition was to start, a task type gone from the
// catalog, or an explicit failure).
type TaskFailed struct {
	TaskID TaskID     `json:"taskId"`
	Type   TaskTypeID `json:"type"`
	Done   int        `json:"done"`
	Count  int        `json:"count"`
	Reason string     `json:"reason"`
	At     time.Time  `json:"at"`
}

// SkillLevelledUp: a completion raised Skill to Level.
type SkillLevelledUp struct {
	Skill SkillID   `json:"skill"`
	Level int       `json:"level"`
	At    time.Time `json:"at"`
}

func (TaskEnqueued) EventType() EventType        { return TypeTaskEnqueued }
func (TaskRemoved) EventType() EventType         { return TypeTaskRemoved }
func (TasksReordered) EventType() EventType      { return TypeTasksReordered }
func (QueueStopped) EventType() EventType        { return TypeQueueStopped }
func (QueueStarted) EventType() EventType        { return TypeQueueStarted }
func (RepetitionStarted) EventType() EventType   { return TypeRepetitionStarted }
func (RepetitionCompleted) EventType() EventType { return TypeRepetitionCompleted }
func (RepetitionCancelled) EventType() EventType { return TypeRepetitionCancelled }
func (TaskCompleted) EventType() EventType       { return TypeTaskCompleted }
func (TaskFailed) EventType() EventType          { return TypeTaskFailed }
func (SkillLevelledUp) EventType() EventType     { return TypeSkillLevelledUp }

func (e TaskEnqueued) OccurredAt() time.Time        { return e.EnqueuedAt }
func (e TaskRemoved) OccurredAt() time.Time         { return e.At }
func (e TasksReordered) OccurredAt() time.Time      { return e.At }
func (e QueueStopped) OccurredAt() time.Time        { return e.At }
func (e QueueStarted) OccurredAt() time.Time        { return e.At }
func (e RepetitionStarted) OccurredAt() time.Time   { return e.StartedAt }
func (e RepetitionCompleted) OccurredAt() time.Time { return e.CompletedAt }
func (e RepetitionCancelled) OccurredAt() time.Time { return e.At }
func (e TaskCompleted) OccurredAt() time.Time       { return e.At }
func (e TaskFailed) OccurredAt() time.Time          { return e.At }
func (e SkillLevelledUp) OccurredAt() time.Time     { return e.At }

func (TaskEnqueued) isEvent()        {}
func (TaskRemoved) isEvent()         {}
func (TasksReordered) isEvent()      {}
func (QueueStopped) isEvent()        {}
func (QueueStarted) isEvent()        {}
func (RepetitionStarted) isEvent()   {}
func (RepetitionCompleted) isEvent() {}
func (RepetitionCancelled) isEvent() {}
func (TaskCompleted) isEvent()       {}
func (TaskFailed) isEvent()          {}
func (SkillLevelledUp) isEvent()     {}

// EncodeEvent returns e's type, the schema version it is written with and
// its JSON data.
func EncodeEvent(e Event) (EventType, int, []byte, error) {
	if e == nil {
		return "", 0, nil, fmt.Errorf("encode event: %w: nil event", ErrInvalid)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return "", 0, nil, fmt.Errorf("encode %s: %w", e.EventType(), err)
	}
	return e.EventType(), e.EventType().SchemaVersion(), data, nil
}

// DecodeEvent reads an event stored with type typ and schema version
// schemaVersion. An older schema version is upcast to the current type; a
// newer one is an error matching ErrNewerSchema; an unknown type matches
// ErrUnknownEvent. Unknown JSON fields are ignored (a newer writer may add
// optional fields without bumping the version).
func DecodeEvent(typ string, schemaVersion int, data []byte) (Event, error) {
	t := EventType(typ)
	current, ok := schemaVersions[t]
	switch {
	case !ok:
		return nil, fmt.Errorf("decode event: %w: %q", ErrUnknownEvent, typ)
	case schemaVersion > current:
		return nil, fmt.Errorf("decode %s: %w: schema version %d, this server reads up to %d", typ, ErrNewerSchema, schemaVersion, current)
	case schemaVersion < 1:
		return nil, fmt.Errorf("decode %s: %w: schema version %d", typ, ErrInvalid, schemaVersion)
	}
	if up, ok := upcasts[upcastKey{t, schemaVersion}]; ok {
		var err error
		if data, err = up(data); err != nil {
			return nil, fmt.Errorf("decode %s: upcast from schema version %d: %w", typ, schemaVersion, err)
		}
	}
	if e, ok := decodeFast(t, data); ok {
		return e, nil
	}
	e, err := decodeJSON(t, data)
	if err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", typ, schemaVersion, err)
	}
	return e, nil
}

// decodeJSON decodes data as the current schema of t with encoding/json.
func decodeJSON(t EventType, data []byte) (e Event, err error) {
	switch t {
	case TypeTaskEnqueued:
		e, err = decodeAs[TaskEnqueued](data)
	case TypeTaskRemoved:
		e, err = decodeAs[TaskRemoved](data)
	case TypeTasksReordered:
		e, err = decodeAs[TasksReordered](data)
	case TypeQueueStopped:
		e, err = decodeAs[QueueStopped](data)
	case TypeQueueStarted:
		e, err = decodeAs[QueueStarted](data)
	case TypeRepetitionStarted:
		e, err = decodeAs[RepetitionStarted](data)
	case TypeRepetitionCompleted:
		e, err = decodeAs[RepetitionCompleted](data)
	case TypeRepetitionCancelled:
		e, err = decodeAs[RepetitionCancelled](data)
	case TypeTaskCompleted:
		e, err = decodeAs[TaskCompleted](data)
	case TypeTaskFailed:
		e, err = decodeAs[TaskFailed](data)
	case TypeSkillLevelledUp:
		e, err = decodeAs[SkillLevelledUp](data)
	default:
		err = fmt.Errorf("%w: %q", ErrUnknownEvent, t)
	}
	return e, err
}

func decodeAs[T Event](data []byte) (Event, error) {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return v, nil
}

type upcastKey struct {
	t       EventType
	version int
}

// upcasts turn the data of an old schema version into the data of the
// current one.
var upcasts = map[upcastKey]func([]byte) ([]byte, error){
	// QueueStopped v1 was {"at": …}: only players stopped queues. v2 adds
	// "reason" (the server stops queues too, e.g. at the offline cap).
	{TypeQueueStopped, 1}: func(data []byte) ([]byte, error) {
		var v1 struct {
			At time.Time `json:"at"`
		}
		if err := json.NewDecoder(bytes.NewReader(data)).Decode(&v1); err != nil {
			return nil, err
		}
		return json.Marshal(QueueStopped{Reason: "", At: v1.At})
	},
}

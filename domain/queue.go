package domain

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Limits of a queue.
const (
	// DefaultQueueLimit is the number of tasks a queue holds when Rules
	// leave QueueLimit at 0.
	DefaultQueueLimit = 10
	// MaxQueueLimit bounds a configured QueueLimit.
	MaxQueueLimit = 1000
	// MinCount and MaxCount bound a task's count of repetitions.
	MinCount, MaxCount = 1, 1000
	// MaxReasonLength bounds a stop or failure reason, in bytes.
	MaxReasonLength = 500
	// MaxCatchUp bounds the repetitions one decision completes on its way
	// to now (see Queue). The rest are left for the next decision, so one
	// decision's events always fit one append.
	MaxCatchUp = 100
)

// Rules are the parameters decisions follow. They are not state: replaying
// a stream never consults them, so changing the catalog or the limit never
// changes the past.
type Rules struct {
	// Catalog defines the task types. Nil means DefaultCatalog().
	Catalog *Catalog
	// QueueLimit is the most tasks a queue holds. 0 means DefaultQueueLimit.
	QueueLimit int
}

// Validate reports whether r is usable.
func (r Rules) Validate() error {
	if r.QueueLimit < 0 || r.QueueLimit > MaxQueueLimit {
		return invalid("queueLimit", "must be between 1 and %d (0 for the default %d), got %d", MaxQueueLimit, DefaultQueueLimit, r.QueueLimit)
	}
	return nil
}

func (r Rules) catalog() *Catalog {
	if r.Catalog == nil {
		return DefaultCatalog()
	}
	return r.Catalog
}

func (r Rules) limit() int {
	if r.QueueLimit <= 0 {
		return DefaultQueueLimit
	}
	return min(r.QueueLimit, MaxQueueLimit)
}

// Queue is the aggregate of one player's queue (stream "queue-<playerId>"):
// the tasks in order, the running repetition of the head task, whether the
// queue advances, and the player's skills and inventory.
//
// Its state changes only by applying events (Apply). Every decision is a
// method that takes the time as an argument and returns the events it
// decided, already applied to q; on error it returns no events and leaves
// q unchanged. Before deciding, every decision first completes the
// repetitions that fell due at or before now (at most MaxCatchUp), each at
// its due time, so a command that arrives after a due time sees the queue
// as it is at now, whether or not the processor got there first.
//
// Times are kept in UTC to the millisecond: decisions truncate now.
//
// A Queue is not safe for concurrent use; Clone it to share.
type Queue struct {
	player PlayerID
	rules  Rules

	version       int64
	tasks         []task
	stopped       bool
	stoppedReason string
	rep           *repetition
	xp            map[SkillID]int64
	inventory     map[ItemID]int64
	updatedAt     time.Time

	// pending collects the events of the decision in progress.
	pending []Event
}

type task struct {
	id         TaskID
	typ        TaskTypeID
	count      int
	done       int
	enqueuedAt time.Time
}

// repetition is the running repetition of the head task. Its maps are
// never changed after it is created.
type repetition struct {
	taskID     TaskID
	number     int
	startedAt  time.Time
	dueAt      time.Time
	durationMs int64
	efficiency float64
	consumed   map[ItemID]int64
	skill      SkillID
	xp         int64
	outputs    map[ItemID]int64
}

// NewQueue returns the empty queue of player (a new player: running, no
// tasks, no XP, nothing in the inventory), deciding by rules.
func NewQueue(player PlayerID, rules Rules) *Queue {
	return &Queue{player: player, rules: rules, xp: map[SkillID]int64{}, inventory: map[ItemID]int64{}}
}

// Player returns the queue's player.
func (q *Queue) Player() PlayerID { return q.player }

// Version returns the number of events applied: the stream version when
// every event of the stream was applied.
func (q *Queue) Version() int64 { return q.version }

// Limit returns the most tasks the queue holds.
func (q *Queue) Limit() int { return q.rules.limit() }

// WithRules returns a copy of q that decides by rules.
func (q *Queue) WithRules(rules Rules) *Queue {
	c := q.Clone()
	c.rules = rules
	return c
}

// Clone returns a deep copy of q.
func (q *Queue) Clone() *Queue {
	c := *q
	c.tasks = slices.Clone(q.tasks)
	c.xp = maps.Clone(q.xp)
	c.inventory = maps.Clone(q.inventory)
	if q.rep != nil {
		r := *q.rep
		c.rep = &r
	}
	c.pending = nil
	return &c
}

// Equal reports whether q and o hold the same state (rules aside).
func (q *Queue) Equal(o *Queue) bool {
	eqRep := (q.rep == nil) == (o.rep == nil)
	if eqRep && q.rep != nil {
		a, b := q.rep, o.rep
		eqRep = a.taskID == b.taskID && a.number == b.number && a.startedAt.Equal(b.startedAt) &&
			a.dueAt.Equal(b.dueAt) && a.durationMs == b.durationMs && a.efficiency == b.efficiency &&
			maps.Equal(a.consumed, b.consumed) && a.skill == b.skill && a.xp == b.xp && maps.Equal(a.outputs, b.outputs)
	}
	return eqRep && q.player == o.player && q.version == o.version && q.stopped == o.stopped &&
		q.stoppedReason == o.stoppedReason && q.updatedAt.Equal(o.updatedAt) &&
		slices.EqualFunc(q.tasks, o.tasks, func(a, b task) bool {
			return a.id == b.id && a.typ == b.typ && a.count == b.count && a.done == b.done && a.enqueuedAt.Equal(b.enqueuedAt)
		}) &&
		maps.Equal(nonZero(q.xp), nonZero(o.xp)) && maps.Equal(nonZero(q.inventory), nonZero(o.inventory))
}

func nonZero[K comparable](m map[K]int64) map[K]int64 {
	out := make(map[K]int64, len(m))
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// Inventory returns a copy of the player's items (only those held).
func (q *Queue) Inventory() map[ItemID]int64 { return nonZero(q.inventory) }

// XP returns the player's total XP in skill.
func (q *Queue) XP(skill SkillID) int64 { return q.xp[skill] }

// Level returns the player's level in skill.
func (q *Queue) Level(skill SkillID) int { return LevelForXP(q.xp[skill]) }

// Len returns the number of tasks in the queue.
func (q *Queue) Len() int { return len(q.tasks) }

// Task returns the task with that ID, and false when it is not queued.
func (q *Queue) Task(id TaskID) (TaskView, bool) {
	i := q.index(id)
	if i < 0 {
		return TaskView{}, false
	}
	return q.tasks[i].view(), true
}

// Running reports whether the queue advances (it was not stopped).
func (q *Queue) Running() bool { return !q.stopped }

// Repetition returns the running repetition, and false when none runs.
// The processor schedules its completion at DueAt.
func (q *Queue) Repetition() (RepetitionView, bool) {
	if q.rep == nil {
		return RepetitionView{}, false
	}
	return q.rep.view(), true
}

func (q *Queue) index(id TaskID) int {
	for i, t := range q.tasks {
		if t.id == id {
			return i
		}
	}
	return -1
}

// decide runs f on a copy of q and, if it succeeds, makes the copy q and
// returns the events f emitted.
func (q *Queue) decide(now time.Time, f func(d *Queue, now time.Time) error) ([]Event, error) {
	if now.IsZero() {
		return nil, invalid("now", "is the zero time")
	}
	now = now.UTC().Truncate(time.Millisecond)
	d := q.Clone()
	if err := f(d, now); err != nil {
		return nil, err
	}
	events := d.pending
	d.pending = nil
	*q = *d
	return events, nil
}

// emit applies e to d and records it as decided.
func (d *Queue) emit(e Event) error {
	if err := d.Apply(e); err != nil {
		return fmt.Errorf("apply decided %s: %w", e.EventType(), err)
	}
	d.pending = append(d.pending, e)
	return nil
}

// Enqueue adds a task of type typ with count repetitions at index position
// of the tasks (nil: the end; past the end: the end, since the queue may
// have moved on since the client saw it; never before a running head: index
// 0 becomes 1). A position that no queue within the limit could have
// (negative, or the limit or more) is invalid. On a running queue with nothing running, the
// task's first repetition starts at now.
func (q *Queue) Enqueue(id TaskID, typ TaskTypeID, count int, position *int, now time.Time) ([]Event, error) {
	if _, err := ParseTaskID(string(id)); err != nil {
		return nil, err
	}
	if count < MinCount || count > MaxCount {
		return nil, invalid("count", "must be between %d and %d, got %d", MinCount, MaxCount, count)
	}
	if position != nil && (*position < 0 || *position >= q.rules.limit()) {
		return nil, invalid("position", "must be between 0 and %d (an index in a queue of at most %d tasks), got %d",
			q.rules.limit()-1, q.rules.limit(), *position)
	}
	tt, ok := q.rules.catalog().Task(typ)
	if !ok {
		return nil, &ValidationError{Field: "type", Reason: fmt.Sprintf("%q is not a task type of the catalog", typ), Err: ErrUnknownTaskType}
	}
	return q.decide(now, func(d *Queue, now time.Time) error {
		if err := d.advance(now); err != nil {
			return err
		}
		if d.index(id) >= 0 {
			return invalid("taskId", "%q is already queued", id)
		}
		if len(d.tasks) >= d.rules.limit() {
			return fmt.Errorf("%w: it holds %d of %d tasks", ErrQueueFull, len(d.tasks), d.rules.limit())
		}
		if level := LevelForXP(d.xp[tt.Skill]); level < tt.LevelRequired {
			return &RequirementError{TaskType: typ, Skill: tt.Skill, Required: tt.LevelRequired, Level: level}
		}
		pos := len(d.tasks)
		if position != nil {
			pos = min(*position, len(d.tasks))
		}
		if pos == 0 && d.rep != nil {
			pos = 1
		}
		if err := d.emit(TaskEnqueued{TaskID: id, Type: typ, Count: count, Position: pos, EnqueuedAt: now}); err != nil {
			return err
		}
		return d.startNext(now)
	})
}

// Remove takes a task out of the queue. Removing the running task cancels
// its repetition, refunds that repetition's inputs and starts the next task
// at now.
func (q *Queue) Remove(id TaskID, now time.Time) ([]Event, error) {
	return q.decide(now, func(d *Queue, now time.Time) error {
		if err := d.advance(now); err != nil {
			return err
		}
		i := d.index(id)
		if i < 0 {
			return fmt.Errorf("%w: %q is not in the queue", ErrTaskNotFound, id)
		}
		t := d.tasks[i]
		if err := d.cancelIfRunning(id, now); err != nil {
			return err
		}
		if err := d.emit(TaskRemoved{TaskID: id, Type: t.typ, Done: t.done, At: now}); err != nil {
			return err
		}
		return d.startNext(now)
	})
}

// Reorder puts the tasks that are not running (all of them when no
// repetition runs, else all but the head) in the order given, which must be
// a permutation of their IDs. The same order as now decides nothing.
func (q *Queue) Reorder(order []TaskID, now time.Time) ([]Event, error) {
	return q.decide(now, func(d *Queue, now time.Time) error {
		if err := d.advance(now); err != nil {
			return err
		}
		waiting := d.waiting()
		if err := checkPermutation(waiting, order); err != nil {
			return err
		}
		if slices.Equal(waiting, order) {
			return nil
		}
		return d.emit(TasksReordered{Order: slices.Clone(order), At: now})
	})
}

func checkPermutation(waiting, order []TaskID) error {
	if len(order) != len(waiting) {
		return invalid("order", "must list the %d tasks that are not running, got %d IDs", len(waiting), len(order))
	}
	want := make(map[TaskID]bool, len(waiting))
	for _, id := range waiting {
		want[id] = true
	}
	seen := make(map[TaskID]bool, len(order))
	for _, id := range order {
		switch {
		case seen[id]:
			return invalid("order", "lists task %q twice", id)
		case !want[id]:
			return invalid("order", "task %q is not a waiting task of the queue", id)
		}
		seen[id] = true
	}
	return nil
}

// waiting returns the IDs of the tasks that are not running.
func (q *Queue) waiting() []TaskID {
	ts := q.tasks
	if q.rep != nil {
		ts = ts[1:]
	}
	ids := make([]TaskID, len(ts))
	for i, t := range ts {
		ids[i] = t.id
	}
	return ids
}

// Stop stops the queue: the running repetition, if any, is cancelled and
// its inputs refunded; the head task stays with its remaining count.
// reason is empty when the player stops the queue, else it says why the
// server did (the player sees it). Stopping a stopped queue decides
// nothing.
func (q *Queue) Stop(reason string, now time.Time) ([]Event, error) {
	if len(reason) > MaxReasonLength {
		return nil, invalid("reason", "is %d bytes, over the limit of %d", len(reason), MaxReasonLength)
	}
	return q.decide(now, func(d *Queue, now time.Time) error {
		if err := d.advance(now); err != nil {
			return err
		}
		if d.stopped {
			return nil
		}
		if d.rep != nil {
			if err := d.cancelIfRunning(d.rep.taskID, now); err != nil {
				return err
			}
		}
		return d.emit(QueueStopped{Reason: reason, At: now})
	})
}

// Start lets a stopped queue advance again: the head task's next
// repetition starts at now. Starting a running queue decides nothing.
func (q *Queue) Start(now time.Time) ([]Event, error) {
	return q.decide(now, func(d *Queue, now time.Time) error {
		if !d.stopped {
			return d.advance(now)
		}
		if err := d.emit(QueueStarted{At: now}); err != nil {
			return err
		}
		return d.startNext(now)
	})
}

// CompleteRepetition completes repetition number of task id if it is the
// running one: it grants the outputs and XP at its due time and starts the
// next repetition (or the next task) at that due time, and so on for every
// later repetition due by now. Completing a repetition that is not the
// running one (already completed, cancelled, never started) decides
// nothing and is no error: two processors may try the same completion.
// Completing it before its due time is ErrRepetitionNotDue.
func (q *Queue) CompleteRepetition(id TaskID, number int, now time.Time) ([]Event, error) {
	return q.decide(now, func(d *Queue, now time.Time) error {
		if d.rep == nil || d.rep.taskID != id || d.rep.number != number {
			return nil
		}
		if now.Before(d.rep.dueAt) {
			return fmt.Errorf("%w: it is due at %s, the time is %s",
				ErrRepetitionNotDue, d.rep.dueAt.Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
		}
		return d.advance(now)
	})
}

// Fail takes a task out of the queue as failed, for reason. Failing the
// running task cancels its repetition (refunding its inputs) and starts the
// next task at now.
func (q *Queue) Fail(id TaskID, reason string, now time.Time) ([]Event, error) {
	if reason == "" || len(reason) > MaxReasonLength {
		return nil, invalid("reason", "must be 1-%d bytes, got %d", MaxReasonLength, len(reason))
	}
	return q.decide(now, func(d *Queue, now time.Time) error {
		if err := d.advance(now); err != nil {
			return err
		}
		i := d.index(id)
		if i < 0 {
			return fmt.Errorf("%w: %q is not in the queue", ErrTaskNotFound, id)
		}
		if err := d.cancelIfRunning(id, now); err != nil {
			return err
		}
		t := d.tasks[i]
		if err := d.emit(TaskFailed{TaskID: id, Type: t.typ, Done: t.done, Count: t.count, Reason: reason, At: now}); err != nil {
			return err
		}
		return d.startNext(now)
	})
}

// Advance completes the repetitions due at or before now (at most
// MaxCatchUp of them). It is what every other decision does first; the
// processor may call it to catch up a queue in one step.
func (q *Queue) Advance(now time.Time) ([]Event, error) {
	return q.decide(now, func(d *Queue, now time.Time) error { return d.advance(now) })
}

func (d *Queue) advance(now time.Time) error {
	for i := 0; i < MaxCatchUp && d.rep != nil && !d.rep.dueAt.After(now); i++ {
		if err := d.completeRunning(); err != nil {
			return err
		}
	}
	return nil
}

// completeRunning completes the running repetition at its due time and
// starts what comes next at that time.
func (d *Queue) completeRunning() error {
	rep, head := d.rep, d.tasks[0]
	at := rep.dueAt
	before := LevelForXP(d.xp[rep.skill])
	err := d.emit(RepetitionCompleted{
		TaskID: rep.taskID, Type: head.typ, Number: rep.number, Skill: rep.skill, XP: rep.xp,
		Granted: maps.Clone(rep.outputs), CompletedAt: at,
	})
	if err != nil {
		return err
	}
	if after := LevelForXP(d.xp[rep.skill]); after > before {
		if err := d.emit(SkillLevelledUp{Skill: rep.skill, Level: after, At: at}); err != nil {
			return err
		}
	}
	if head.done+1 == head.count {
		if err := d.emit(TaskCompleted{TaskID: head.id, Type: head.typ, Count: head.count, At: at}); err != nil {
			return err
		}
	}
	return d.startNext(at)
}

// cancelIfRunning cancels the running repetition when it belongs to task id.
func (d *Queue) cancelIfRunning(id TaskID, now time.Time) error {
	if d.rep == nil || d.rep.taskID != id {
		return nil
	}
	return d.emit(RepetitionCancelled{TaskID: id, Number: d.rep.number, Refunded: maps.Clone(d.rep.consumed), At: now})
}

// startNext starts the head task's next repetition at time at, when the
// queue runs and nothing runs yet. A head task that cannot start (its type
// left the catalog, its level requirement is no longer met, its inputs are
// missing) fails with the reason, and the next task is tried.
func (d *Queue) startNext(at time.Time) error {
	for !d.stopped && d.rep == nil && len(d.tasks) > 0 {
		head := d.tasks[0]
		reason := ""
		tt, ok := d.rules.catalog().Task(head.typ)
		level := LevelForXP(d.xp[tt.Skill])
		switch {
		case !ok:
			reason = fmt.Sprintf("task type %q is no longer in the catalog", head.typ)
		case level < tt.LevelRequired:
			reason = fmt.Sprintf("%s needs %s level %d, the player has level %d", head.typ, tt.Skill, tt.LevelRequired, level)
		default:
			reason = d.missing(tt.Inputs)
		}
		if reason != "" {
			err := d.emit(TaskFailed{TaskID: head.id, Type: head.typ, Done: head.done, Count: head.count, Reason: reason, At: at})
			if err != nil {
				return err
			}
			continue
		}
		durationMs, efficiency := RepetitionDuration(tt.BaseDurationMs, tt.LevelRequired, level)
		err := d.emit(RepetitionStarted{
			TaskID: head.id, Type: head.typ, Number: head.done + 1,
			StartedAt: at, DueAt: at.Add(time.Duration(durationMs) * time.Millisecond),
			DurationMs: durationMs, Efficiency: efficiency, Consumed: tt.Inputs,
			Skill: tt.Skill, XP: tt.XP, Outputs: tt.Outputs,
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// missing describes the inputs the inventory lacks, or returns "".
func (d *Queue) missing(inputs map[ItemID]int64) string {
	var parts []string
	for _, id := range sortedKeys(inputs) {
		if have := d.inventory[id]; have < inputs[id] {
			parts = append(parts, fmt.Sprintf("%d %s (have %d)", inputs[id], id, have))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "missing inputs: " + strings.Join(parts, ", ")
}

// Apply changes q by one event, checking that the event fits the state (a
// stream written by these decisions always fits). An event that does not
// fit returns an error matching ErrInconsistentEvent and leaves q
// unchanged.
func (q *Queue) Apply(e Event) error {
	if err := q.apply(e); err != nil {
		return fmt.Errorf("apply %s to queue %s at version %d: %w: %s", e.EventType(), q.player, q.version+1, ErrInconsistentEvent, err)
	}
	q.version++
	if at := e.OccurredAt().UTC(); at.After(q.updatedAt) {
		q.updatedAt = at
	}
	return nil
}

func (q *Queue) apply(e Event) error {
	switch e := e.(type) {
	case TaskEnqueued:
		switch {
		case q.index(e.TaskID) >= 0:
			return fmt.Errorf("task %q is already queued", e.TaskID)
		case e.Position < 0 || e.Position > len(q.tasks) || (e.Position == 0 && q.rep != nil):
			return fmt.Errorf("position %d does not fit %d tasks", e.Position, len(q.tasks))
		case e.Count < MinCount:
			return fmt.Errorf("count %d", e.Count)
		}
		q.tasks = slices.Insert(q.tasks, e.Position, task{id: e.TaskID, typ: e.Type, count: e.Count, enqueuedAt: e.EnqueuedAt.UTC()})
	case TaskRemoved:
		return q.removeTask(e.TaskID)
	case TaskFailed:
		return q.removeTask(e.TaskID)
	case TasksReordered:
		if err := checkPermutation(q.waiting(), e.Order); err != nil {
			return err
		}
		byID := make(map[TaskID]task, len(q.tasks))
		for _, t := range q.tasks {
			byID[t.id] = t
		}
		next := q.tasks[:len(q.tasks)-len(e.Order)]
		for _, id := range e.Order {
			next = append(next, byID[id])
		}
		q.tasks = next
	case QueueStopped:
		if q.rep != nil {
			return fmt.Errorf("a repetition still runs")
		}
		q.stopped, q.stoppedReason = true, e.Reason
	case QueueStarted:
		q.stopped, q.stoppedReason = false, ""
	case RepetitionStarted:
		switch {
		case q.stopped || q.rep != nil || len(q.tasks) == 0 || q.tasks[0].id != e.TaskID:
			return fmt.Errorf("task %q is not a head that may start", e.TaskID)
		case e.Number != q.tasks[0].done+1:
			return fmt.Errorf("repetition %d of a task with %d done", e.Number, q.tasks[0].done)
		}
		for id, n := range e.Consumed {
			if n < 0 || q.inventory[id] < n {
				return fmt.Errorf("consumes %d %s, the inventory has %d", n, id, q.inventory[id])
			}
		}
		for id, n := range e.Consumed {
			q.inventory[id] -= n
		}
		q.rep = &repetition{
			taskID: e.TaskID, number: e.Number, startedAt: e.StartedAt.UTC(), dueAt: e.DueAt.UTC(),
			durationMs: e.DurationMs, efficiency: e.Efficiency, consumed: maps.Clone(e.Consumed),
			skill: e.Skill, xp: e.XP, outputs: maps.Clone(e.Outputs),
		}
	case RepetitionCompleted:
		if err := q.checkRunning(e.TaskID, e.Number); err != nil {
			return err
		}
		if e.XP < 0 || !nonNegative(e.Granted) {
			return fmt.Errorf("negative grant")
		}
		for id, n := range e.Granted {
			q.inventory[id] += n
		}
		q.xp[e.Skill] += e.XP
		q.tasks[0].done++
		q.rep = nil
	case RepetitionCancelled:
		if err := q.checkRunning(e.TaskID, e.Number); err != nil {
			return err
		}
		if !nonNegative(e.Refunded) {
			return fmt.Errorf("negative refund")
		}
		for id, n := range e.Refunded {
			q.inventory[id] += n
		}
		q.rep = nil
	case TaskCompleted:
		if len(q.tasks) == 0 || q.tasks[0].id != e.TaskID || q.rep != nil || q.tasks[0].done != q.tasks[0].count {
			return fmt.Errorf("task %q is not a finished head", e.TaskID)
		}
		q.tasks = q.tasks[1:]
	case SkillLevelledUp:
		// The level follows from the XP; the event is for readers.
	default:
		return fmt.Errorf("%w: %T", ErrUnknownEvent, e)
	}
	return nil
}

func (q *Queue) checkRunning(id TaskID, number int) error {
	if q.rep == nil || q.rep.taskID != id || q.rep.number != number {
		return fmt.Errorf("repetition %d of %q is not the running one", number, id)
	}
	return nil
}

func (q *Queue) removeTask(id TaskID) error {
	i := q.index(id)
	switch {
	case i < 0:
		return fmt.Errorf("task %q is not queued", id)
	case i == 0 && q.rep != nil:
		return fmt.Errorf("task %q still has a running repetition", id)
	}
	q.tasks = slices.Delete(q.tasks, i, i+1)
	return nil
}

func nonNegative(m map[ItemID]int64) bool {
	for _, n := range m {
		if n < 0 {
			return false
		}
	}
	return true
}

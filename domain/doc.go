// Package domain owns the game rules of taskqueue: the task catalog, skills
// and levels, the Queue aggregate of each player and the events it decides.
//
// It is pure: standard library only, no I/O, no clock, no randomness. Time
// and IDs come in as arguments, so replaying a stream is deterministic and
// tests need no sleeps. Nothing here is safe for concurrent mutation; a
// *Catalog is immutable and safe for concurrent use.
//
// # The catalog
//
// A catalog is a JSON file (the embedded default is catalog.json beside
// this file; ParseCatalog reads another, loading it is the caller's job):
//
//	{
//	  "skills": [{"id": "woodcutting", "name": "Woodcutting"}],
//	  "items":  [{"id": "logs", "name": "Logs"}],
//	  "tasks":  [{"id": "chop-wood", "name": "Chop wood", "skill": "woodcutting",
//	              "levelRequired": 1, "baseDurationMs": 3000,
//	              "inputs": {}, "outputs": {"logs": 1}, "xp": 10}]
//	}
//
// IDs are 1-64 characters of [a-z0-9-], unique per kind. Per repetition, a
// task consumes "inputs" when it starts and grants "outputs" and "xp" (in
// its skill) when it completes. Unknown fields are an error. An optional
// "levels" object is accepted only if it equals the fixed curve (so the
// output of GET /api/catalog is itself a valid catalog file). Validation
// reports every problem at once, each naming its entry: unknown skills or
// items, duplicate IDs, durations outside 1 ms-24 h, XP or quantities that
// are not positive, level requirements outside 1-99, and task types a new
// player can never start (players start with an empty inventory and every
// skill at level 1: an input that no reachable task produces, or a level
// requirement in a skill no reachable task trains).
//
// # Levels and speed
//
// XP maps to a level by a fixed curve (Levels, XPForLevel, LevelForXP),
// capped at level 99; XP itself keeps growing. A repetition at level L of a
// task requiring R takes base × (1 − min(0.5, 0.01 × (L − R))) ms, rounded
// down; efficiency = base / actual, rounded to two decimals.
//
// # The queue
//
// Queue is the aggregate of stream "queue-<playerId>" (PlayerID.Stream). A
// new queue runs and is empty. The rules (see Queue's methods for each):
//
//   - Enqueue checks the count (1-1000), the task type, the queue limit
//     (Rules.QueueLimit, default 10) and the level requirement. Items are
//     checked when each repetition starts (earlier tasks may produce them).
//   - When a running queue has a head task and nothing runs, the head's next
//     repetition starts: at now when the queue becomes runnable (enqueue on
//     an empty queue, start, remove of the running task), at the previous
//     repetition's due time when one completes. It consumes its inputs; if
//     they are missing, its type left the catalog or its level requirement
//     is no longer met, the task fails with a reason and the next is tried.
//   - A completion grants the outputs and XP fixed when the repetition
//     started. Every decision first completes what fell due by now.
//   - Remove of the running task cancels its repetition and refunds its
//     inputs; Stop does the same and keeps the task at the head with its
//     remaining count; Start starts it again. Reorder permutes the tasks
//     that are not running.
//
// # Events
//
// Events are Go types with a stable name (EventType) and a schema version
// (EncodeEvent, DecodeEvent). Their JSON data, all times RFC 3339 UTC:
//
//	TaskEnqueued        {taskId, type, count, position, enqueuedAt}
//	TaskRemoved         {taskId, type, done, at}
//	TasksReordered      {order: [taskId…] (the tasks that are not running), at}
//	QueueStopped (v2)   {reason, at}        v1 was {at}, upcast with reason ""
//	QueueStarted        {at}
//	RepetitionStarted   {taskId, type, number, startedAt, dueAt, durationMs, efficiency,
//	                     consumed: {item: n}, skill, xp, outputs: {item: n}}
//	RepetitionCompleted {taskId, type, number, skill, xp, granted: {item: n}, completedAt}
//	RepetitionCancelled {taskId, number, refunded: {item: n}, at}
//	TaskCompleted       {taskId, type, count, at}
//	TaskFailed          {taskId, type, done, count, reason, at}
//	SkillLevelledUp     {skill, level, at}
//
// Decoding a newer schema version than this code knows is an error
// (ErrNewerSchema); an older one is upcast. Renaming an event type or a
// JSON field breaks every stored stream and every reader (projections,
// relay, clients): add a schema version and an upcast instead.
//
// # Errors
//
// Sentinels name conditions (ErrInvalid, ErrQueueFull, ErrRequirementNotMet,
// ErrUnknownTaskType, ErrTaskNotFound, ErrRepetitionNotDue, …); typed errors
// carry data (*ValidationError with the field, *RequirementError,
// *CatalogError). Match them with errors.Is and errors.As.
package domain

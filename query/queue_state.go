package query

import "github.com/taskqueue/taskqueue/domain"

// QueueState is what a queue is doing, in the one word a client shows
// (the queue view's "state", queue_status.state). The set is closed:
// QueueIdle, QueueRunning, QueueStopped; adding one is a change of the API
// (docs/API.md, "Versioning").
type QueueState string

const (
	// QueueStopped: the queue does not advance, even when a task is added:
	// the player or the server stopped it (it may hold tasks or none).
	QueueStopped QueueState = "stopped"
	// QueueIdle: the queue advances but holds no task, so nothing runs; the
	// next task queued starts at once. "running" is true for it, which is
	// why running alone does not tell an active player.
	QueueIdle QueueState = "idle"
	// QueueRunning: the queue advances and holds tasks.
	QueueRunning QueueState = "running"
)

// QueueStateOf returns the state of v. The queue_status read model's
// generated column "state" is the same expression over its running and
// task_count columns (migrations 0015_queue_state); a test holds the two
// to each other.
func QueueStateOf(v domain.QueueView) QueueState {
	return queueState(v.Running, len(v.Tasks))
}

func queueState(running bool, tasks int) QueueState {
	switch {
	case !running:
		return QueueStopped
	case tasks == 0:
		return QueueIdle
	default:
		return QueueRunning
	}
}

package query

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

// ReadModels is every read model the query handlers read.
type ReadModels interface {
	QueueViewReadModel
	HistoryReadModel
	PlayerProgressReadModel
	AnalyticsReadModel
}

// Replica outcomes, told to Replicas.Observe.
const (
	ReplicaServed = "replica" // the replica answered
	ReplicaFailed = "error"   // the replica failed; the primary answered
	ReplicaBehind = "behind"  // the replica had not replayed a minVersion in time; the primary answered
)

// Replicas reads from PostgreSQL hot standbys' read models in turn and
// falls back to the primary's: when a replica fails (down, cut off, too
// slow for the request's deadline), and, for a queue view with a
// MinVersion, when the replica has not replayed it within Wait (read your
// writes: a client's minVersion is never answered from an older replica,
// nor refused while the primary has it). Safe for concurrent use.
type Replicas struct {
	Primary  ReadModels
	Replicas []ReadModels
	// Wait bounds how long a queue view waits for a replica to replay its
	// MinVersion before asking the primary. Default 500 ms.
	Wait time.Duration
	// Observe, when set, is told each read's outcome (ReplicaServed…).
	Observe func(outcome string)

	next atomic.Uint64
}

func (r *Replicas) pick() ReadModels {
	return r.Replicas[r.next.Add(1)%uint64(len(r.Replicas))]
}

func (r *Replicas) observe(outcome string) {
	if r.Observe != nil {
		r.Observe(outcome)
	}
}

// read runs f on a replica, then on the primary if the replica failed.
func read[T any](ctx context.Context, r *Replicas, f func(ReadModels) (T, error)) (T, error) {
	v, err := f(r.pick())
	if err == nil {
		r.observe(ReplicaServed)
		return v, nil
	}
	if ctx.Err() != nil {
		return v, err
	}
	r.observe(ReplicaFailed)
	return f(r.Primary)
}

// QueueViews returns the queue view handler over the replicas, falling
// back to primary (the handler of the primary's read models).
func (r *Replicas) QueueViews(primary *QueueViewHandler) *QueueViewHandler {
	replica := *primary
	replica.rm = replicaQueues{r}
	replica.committed = nil // the primary's commits reach a replica later: poll it
	replica.MaxWait = r.wait()
	replica.fallback = primary
	replica.replicas = r
	return &replica
}

func (r *Replicas) wait() time.Duration {
	if r.Wait <= 0 {
		return 500 * time.Millisecond
	}
	return r.Wait
}

// replicaQueues reads queue snapshots from one replica per call.
type replicaQueues struct{ r *Replicas }

func (q replicaQueues) QueueSnapshot(ctx context.Context, player domain.PlayerID) (QueueSnapshot, error) {
	return q.r.pick().QueueSnapshot(ctx, player)
}

// QueueSnapshot implements QueueViewReadModel: a replica's snapshot, or
// the primary's when it fails (QueueViews also waits for a MinVersion).
func (r *Replicas) QueueSnapshot(ctx context.Context, player domain.PlayerID) (QueueSnapshot, error) {
	return read(ctx, r, func(m ReadModels) (QueueSnapshot, error) { return m.QueueSnapshot(ctx, player) })
}

// History implements HistoryReadModel.
func (r *Replicas) History(ctx context.Context, f HistoryFilter) ([]HistoryEntry, error) {
	return read(ctx, r, func(m ReadModels) ([]HistoryEntry, error) { return m.History(ctx, f) })
}

// PlayerProgress implements PlayerProgressReadModel.
func (r *Replicas) PlayerProgress(ctx context.Context, player domain.PlayerID) (PlayerProgressView, error) {
	return read(ctx, r, func(m ReadModels) (PlayerProgressView, error) { return m.PlayerProgress(ctx, player) })
}

// TaskDaily implements AnalyticsReadModel.
func (r *Replicas) TaskDaily(ctx context.Context, from, to time.Time, taskType string) ([]TaskDay, error) {
	return read(ctx, r, func(m ReadModels) ([]TaskDay, error) { return m.TaskDaily(ctx, from, to, taskType) })
}

// GrantsDaily implements AnalyticsReadModel.
func (r *Replicas) GrantsDaily(ctx context.Context, from, to time.Time) ([]GrantDay, error) {
	return read(ctx, r, func(m ReadModels) ([]GrantDay, error) { return m.GrantsDaily(ctx, from, to) })
}

// ActivePlayersHourly implements AnalyticsReadModel.
func (r *Replicas) ActivePlayersHourly(ctx context.Context, from, to time.Time) ([]ActiveHour, error) {
	return read(ctx, r, func(m ReadModels) ([]ActiveHour, error) { return m.ActivePlayersHourly(ctx, from, to) })
}

// QueueLengths implements AnalyticsReadModel.
func (r *Replicas) QueueLengths(ctx context.Context) ([]QueueLength, error) {
	return read(ctx, r, func(m ReadModels) ([]QueueLength, error) { return m.QueueLengths(ctx) })
}

// Package projections owns the read side's write path: the Runner that keeps
// projections up to date with the event log (a batch and its checkpoint in
// one transaction: nothing lost or applied twice), the projections themselves
// (Queues: queue_status and task_history; PlayerProgress; Analytics), their
// blue-green rebuilds (bulk.go on PostgreSQL), the retention of task_history,
// forgetting a player's rows (forget.go), and the read-model readers that
// query/ declares (NewReadModels), for PostgreSQL (pgx) and SQLite.
//
// A projection's name keys its checkpoint and tables: renaming it starts it
// again from position 0. A transient error never fails a projection: it
// shows degraded and retries from its checkpoint; only an event refused
// twice stops it (Retry, Skip).
//
// The design (exactly-once, the two SQL dialects, failures, generations and
// rebuilds, shared catch-up pages, retention): docs/ARCHITECTURE.md,
// "projections"; the tables: docs/READ_MODELS.md.
//
// Concurrency: Runner is safe for concurrent use; a projection's Apply is
// called by one goroutine at a time per generation.
package projections

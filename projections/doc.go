// Package projections owns the read side's write path: the Runner that keeps
// projections up to date with the event log, the projections themselves
// (Queues: queue_status and task_history; PlayerProgress: player_progress;
// Analytics: the analyst aggregates), their blue-green rebuilds, the
// retention of task_history, and the read-model readers that query/ declares
// (NewReadModels), for PostgreSQL (pgx) and SQLite (database/sql).
//
// # Checkpoints and exactly-once
//
// Each projection has a name and a version. The name keys its checkpoint rows
// in projection_checkpoints: renaming a projection orphans its checkpoint and
// tables, and the new name starts from position 0. The checkpoint is an
// eventstore.Position, both parts (PostgreSQL needs the transaction ID).
// The Runner reads the log from the checkpoint (catch-up with pages of
// ReadAll of up to Config.BatchSize events, then Subscribe for live events)
// and, for each batch, runs the projection's SQL and moves the checkpoint in
// ONE transaction of the read-model database. A crash at any point loses or
// repeats nothing: the batch and its checkpoint commit together or not at
// all. The checkpoint update is a compare-and-set on the old position, so two
// runners (two processes) on the same projection never both apply a batch:
// the loser rolls back and reloads.
//
// # One projection, two dialects
//
// A projection's Apply gets a Tx, the runner's transaction, whichever
// backend runs it: pgx on PostgreSQL (NewPostgresDB, the event store's pool),
// database/sql on SQLite (NewSQLiteStoreDB, the event store's single writer,
// so read-model writes and checkpoints are serialized with appends in the
// same file, behind the appends waiting). Statements are written once with $N placeholders and ON CONFLICT
// upserts; Tx.Dialect tells where they must differ (PostgreSQL partitions).
// Projections load the rows a batch touches with one query, apply the batch
// in memory and write back with multi-row upserts: one round trip per
// thousands of rows, not one per event. Such a statement's text depends on
// its number of rows: mark it Unprepared, or pgx keeps one prepared
// statement per size on every connection.
//
// # Failures
//
// A transient error (faults.Transient: the database or the log could not
// be reached, a timeout, a serialization failure, a full disk), wherever it
// happens (catch-up read, subscription, a batch's commit, a checkpoint
// load, a rebuild's switch), is never a failure of an event: the projection
// shows degraded (since when, the last error), backs off (faults.Outage,
// one per projection, told to Config.Observer) and starts again from its
// checkpoints in the database (a commit whose acknowledgement was lost may
// have committed), without limit. When the projection's code refuses a
// batch (a permanent error), the runner applies its events one by one,
// commits the ones before the refused event and tries that event once more
// from the checkpoint after Config.RetryDelay; only if it is refused again
// does the projection stop in state failed, with the event's position, ID,
// type and the error in Status (the others keep running). Retry resumes it
// after a fix; Skip applies the event in a transaction it rolls back and,
// only if it is still refused, moves the checkpoint past it and records it
// in projection_skipped_events (else ErrSkipRefused, and an event that
// applies now resumes the projection).
//
// # Blue-green rebuilds
//
// Tables are generations: the physical table of logical table T in
// generation G is T__G (queue_status__v1, made by a migration), and a view
// named T selects from the active generation; queries and analysts read the
// views only. Raising a projection's Version, or Runner.Rebuild (what
// `taskqueue replay --projection NAME` calls), creates generation
// v<version> (or v<version>r<stamp> for a rebuild of the same version) with
// the shape of the active one (PostgreSQL: CREATE TABLE ... LIKE ...
// INCLUDING ALL, plus its partitioning; SQLite: the DDL from sqlite_master
// under the new names), unless a migration already created tables of that
// name (how a new version changes its schema), and builds it from position 0
// while the active generation keeps serving. When the build has caught up,
// the runner stops the old generation's worker, applies what is left, and in
// ONE transaction marks the new generation active, re-points the views and
// drops the old tables and checkpoint. A reader sees the old model or the new
// one, never a half-built one. Progress (done, total, events/s, ETA) is in
// Status.Rebuild; FormatProgress renders it as a terminal progress bar. A
// rebuild interrupted by a restart resumes from its own checkpoint. On
// PostgreSQL the part from position 0 to the head is a bulk build (bulk.go:
// the log read in stream order, each stream folded in memory, every row
// written once with COPY, a short transaction per page; a build interrupted
// there starts again from empty tables).
//
// Replay is what `taskqueue replay --projection NAME` runs: a rebuild, a
// progress bar, the wait for the switch.
//
// # Catch-up
//
// Projections catching up together (all of them at first start, or all
// rebuilt at once) share the pages of the log they read: the Runner keeps
// the last few pages, so each is read from the store once. Events handed to
// Apply are shared and must not be modified.
//
// # Forgetting a player
//
// Runner.Forget (forget.go) removes a forgotten player's rows after the
// player's stream was deleted from the log (eventstore.Store.DeleteStream:
// tombstones at the same positions, which no reader is handed): every
// projection implementing PlayerForgetter deletes them from every
// generation, once at once and once more when every projection has read
// past the erased positions (a batch read before the deletion may still
// commit); the runner's shared page cache is dropped, since its pages may
// hold the erased events. Projections whose tables hold sums over players
// (Analytics) ask for a blue-green rebuild: subtracting floating sums would
// not give what a rebuild gives, and a rebuild after a forget must equal
// the live read models.
//
// # Retention
//
// Retention sweeps task_history: PostgreSQL drops whole daily partitions
// (the Queues projection creates them as rows arrive), SQLite deletes
// expired rows in small batches. The number of days is a setting.
//
// Concurrency: Runner is safe for concurrent use; a projection's Apply is
// called by one goroutine at a time per generation.
package projections

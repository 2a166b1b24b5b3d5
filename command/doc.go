// Package command owns the write side of taskqueue: one handler per command
// (one file each), each a plain struct plus a handler that loads the
// player's domain.Queue, lets it decide, and appends the decided events to
// the queue's stream with the exact expected version.
//
// # Loading
//
// Queues keeps an in-memory cache of loaded aggregates by stream, bounded
// (least recently used goes first) and safe for concurrent use. A command
// reads only the stream's tail after the cached version
// (ReadStream from version+1), so a player with 100,000 events costs what a
// new one does once the queue is cached; a cold load reads the whole stream
// once. Commands on one player in one process run one at a time (a lock per
// cached stream), so they never conflict with each other; commands from
// other processes (another server, a processor) are caught by the expected
// version: on eventstore.ErrWrongVersion the handler reads the new tail and
// decides again, at most Config.MaxAttempts times, then fails with
// ErrConflict.
//
// With Config.Optimistic (the processor sets it) a command on a cached
// queue skips the read: it decides on the cached queue and appends with the
// cached version, which the store accepts only if nothing was appended
// since, so a decision that took was made on the current queue. Anything
// else the cached queue answers (a wrong version, a refusal, no events, a
// failed If-Match, a key it has seen) may come from an outdated queue: the
// command then reads the tail and decides again as above, without counting
// that try as an attempt.
//
// # Idempotency
//
// Every command carries an idempotency key (Request.IdempotencyKey, from
// the Idempotency-Key header; the handler makes a random one when it is
// empty, which makes that request not retry-safe). The key is stored as the
// CausationID of every event the command appends. Event IDs are derived
// (UUIDv5) from the stream, the key, a fingerprint of the command's content
// (its name and fields, not the time nor If-Match) and the event's index,
// so:
//
//   - The loaded aggregate remembers, for the last Config.KeysPerQueue keys
//     seen in its stream, the ID of each key's first event and the stream
//     version after that command. A retry whose first event ID matches is
//     the same request: it returns the first result (Duplicate set, the
//     version then; for EnqueueTask the task as first queued) and appends
//     nothing. A retry with the same key and a different first ID is a
//     different request: ErrIdempotencyKeyReused (HTTP 422).
//   - Two copies of one request racing from two processes decide the same
//     event IDs; the store's idempotent append makes the loser a no-op.
//   - A command that decided no events (stop a stopped queue, complete a
//     repetition that is no longer running) stores nothing, so its retry
//     runs again; a command refused with an error stores nothing either.
//   - A key older than the last KeysPerQueue keys of its stream is
//     forgotten: reused with the same request, the command decides event IDs
//     that the store already holds, and is refused with
//     ErrIdempotencyKeyReused (never run twice, never a server error);
//     reused with another request, it runs as a new one.
//
// # Conditions
//
// Request.IfMatch makes a command conditional on the stream version (HTTP
// If-Match): a mismatch is a *PreconditionFailedError (412). It is checked
// after idempotency, so a retried conditional request still returns its
// first result. Domain errors (domain.ErrQueueFull, *domain.ValidationError,
// …) pass through unchanged for the web layer to map.
//
// # Decorators
//
// Handlers contain no logging or metrics: Handlers.Use wraps every handler
// with Middleware at wiring time (Logging, Metrics).
package command

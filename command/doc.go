// Package command owns the write side of taskqueue: one handler per command
// (one file each), each a plain struct plus a handler that loads the
// player's domain.Queue (cached, with snapshots), lets it decide, and
// appends the decided events with the stream's exact expected version.
//
// Every command carries an idempotency key; event IDs derive from the
// stream, the key, the command's content and the event's index, so a retry
// returns its first result and never appends twice, and a key reused with
// other content is refused (ErrIdempotencyKeyReused). Request.IfMatch makes
// a command conditional on the version (*PreconditionFailedError). Handlers
// contain no logging or metrics: Handlers.Use wraps them (Logging, Metrics).
//
// The design (loading and the optimistic path, idempotency in detail,
// conditions): docs/ARCHITECTURE.md, "command".
package command

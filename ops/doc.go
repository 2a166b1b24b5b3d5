// Package ops owns what an operator does to a running taskqueue beside
// serving it: replaying read models (with a terminal progress bar), listing a
// player's events, time travel (a queue as it was at a moment, folded from its
// events), moving the event log between stores (export to JSON lines,
// import into an empty store), and forgetting a player. The `taskqueue
// replay|events|queue|export|import|forget` commands and the admin routes
// GET /api/admin/players/{id}/events, GET /api/admin/players/{id}/queue?at=
// and POST /api/admin/players/{id}/forget are thin wrappers over the
// functions here: each takes the stores it needs and an io.Writer.
//
// # The event line
//
// Events travel as JSON lines (EventLine), one event per line, in log order:
// id, stream, version, position, type, schemaVersion, data, metadata,
// recordedAt. Export writes them, ListEvents prints them, Import reads them.
// Renaming a JSON field breaks every export already written: add fields, never
// rename them.
//
// # Forgetting a player
//
// ForgetPlayer (forget.go) runs a GDPR erasure over what app wires in
// Forgetting: sessions and sockets first (the player acts no more), then
// the stream (eventstore.Store.DeleteStream), the read models of every
// runner, the caches, and player.forgotten last. Each step is idempotent,
// so an error (503) is answered by running it again. POST
// /api/admin/players/{id}/forget (AdminForget) and `taskqueue forget` wrap
// it; docs/API.md, "Forgetting a player", is the user's view.
//
// # Import
//
// Import writes into an EMPTY store only (its Head is Start; otherwise it
// fails with ErrStoreNotEmpty before writing anything). It reads the whole
// input once to check it (every line well formed, every stream starting at
// version 1 with no gap, no event ID twice) before it appends anything, so a
// bad file writes nothing. Event IDs, types, schema versions, data and
// metadata are kept byte for byte; stream versions are kept (the file must
// hold each stream from its start); global positions are the target store's
// own. Consecutive events of one stream are appended together (at most
// eventstore.MaxEventsPerAppend) with the exact expected version, so an
// import that is interrupted and run again fails on the first stream already
// there rather than duplicating anything.
//
// # Moments
//
// A moment (ParseMoment) is an RFC 3339 time or a global position (the form
// of eventstore.Position.String). A stream "at a moment" is the prefix of its
// events that occurred at or before the time (Metadata.OccurredAt), or that
// sit at or below the position: folding stops at the first event past the
// moment, since an aggregate folds only in order.
//
// # Replay
//
// Replay with no bound asks the running Runner for a blue-green rebuild of
// each projection (projections.Runner.Rebuild, WaitRebuilt) and draws
// projections.FormatProgress. Replay to a position or a time cannot rebuild
// the serving read models (they follow the live log), so ReplayTo copies the
// log up to the bound into a NEW SQLite file and builds every read model
// there: the read models as they were, for an analyst to open, the serving
// ones untouched.
//
// Concurrency: every function here is safe to call concurrently with a
// running service on the same stores (they read the log, or write into
// stores nothing else writes to).
package ops

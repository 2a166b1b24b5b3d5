// Package domain owns the game rules of taskqueue: the task catalog, skills
// and levels, the Queue aggregate of each player (stream "queue-<playerId>")
// and the events it decides.
//
// It is pure: standard library only, no I/O, no clock, no randomness. Time
// and IDs come in as arguments, so replaying a stream is deterministic and
// tests need no sleeps. Nothing here is safe for concurrent mutation; a
// *Catalog is immutable and safe for concurrent use.
//
// Events have a stable name (EventType) and a schema version (EncodeEvent,
// DecodeEvent; fastdecode.go decodes them without reflection): renaming an
// event type or a JSON field breaks every stored stream and every reader;
// add a schema version and an upcast instead. Errors are sentinels
// (ErrInvalid, ErrQueueFull, …) and typed errors (*ValidationError,
// *RequirementError, *CatalogError), matched with errors.Is and errors.As.
//
// The rules in detail (the catalog file, levels and speed, the queue, the
// events' JSON): docs/ARCHITECTURE.md, "domain".
package domain

// Package app owns the service's configuration (Config: every setting is an
// environment variable TASKQUEUE_* and a flag of `taskqueue serve`; Load,
// then Validate reports every problem at once) and the wiring that builds
// the application from it (New, NewProcessorApp), so that the binary and the
// tests build the same graph: the event store chosen by Config (KurrentDB,
// else PostgreSQL, else the SQLite file in DataDir), the read side, the
// processor, the realtime hub, Redis roles or their in-process fallbacks,
// metrics and tracing, and the HTTP handler.
//
// New builds everything or nothing (on error it closes what it opened); the
// cleanup it returns closes in reverse order. Renaming a variable or a flag
// breaks deployments and the README's table (a test checks it).
//
// The design of the wiring, the read-through queue cache and the analyst
// role: docs/ARCHITECTURE.md, "app".
package app

// Package app owns the service's configuration (Config: every setting an
// environment variable TASKQUEUE_* and a flag of `taskqueue serve`) and the
// one function that wires the whole application from it (New), so that the
// binary and the tests build the same graph.
//
// Contracts:
//   - Config is data: Load reads the environment, then flags, then fills
//     defaults, then Validate reports every problem at once (errors.Join).
//     Renaming an environment variable or a flag breaks deployments and the
//     README's configuration table (a test checks the table).
//   - New builds everything or nothing: on error every resource it opened is
//     closed again; on success the returned cleanup closes them in reverse
//     order of opening. Migrations are applied before New returns.
//   - The event store backend is chosen by Config: KurrentDB when
//     KurrentDBURL is set, else PostgreSQL when DatabaseURL is set, else a
//     SQLite file in DataDir (the embedded default).
//   - The read side runs inside the app on every backend (with KurrentDB
//     in the SQL database beside it: PostgreSQL with DatabaseURL, else the
//     SQLite file): the projections runner (queues, player_progress, analytics) follows the
//     log into the same database, the history's retention sweeps hourly,
//     GET .../history, GET /api/players/{id}/progress and
//     GET /api/analytics/{report} read it, and /readyz fails while a
//     projection has failed. The processor (schedule, due loop, command
//     bus) runs there too and completes repetitions on time; its dead
//     letter queue backs /api/admin/deadletters. The cleanup stops them
//     before closing the store.
//   - The realtime hub (GET /api/ws) follows the log with one
//     subscription; it delivers a batch only after
//     the queue projection applied it (a watermark on the runner).
//   - Redis (package redisx) when RedisURL is set, in-process otherwise:
//     sessions (dev tokens carry "sid"; POST /api/auth/refresh and
//     /logout; a revoked session is refused on REST by web's session check
//     and its sockets closed by the hub, on every instance), the command
//     rate limits (RateLimitPlayer, RateLimitIP), the queue cache and
//     progress entries (kept by the hub's change sink and by each
//     successful command), the hub's cross-instance wake-ups, and
//     player.offline on the integration topics (Redis streams, "taskqueue."
//     prefix) when a player's last socket closes. RedisPrefix starts every
//     key and channel.
//   - GET /api/queue/{playerId} reads the read side:
//     query.QueueViewHandler over queue_status and
//     player_progress (projections.ReadModels), so that reads scale apart
//     from the aggregate and the command side's cache. ?minVersion=N
//     (read-your-writes, N the ETag of the client's command) waits up to
//     5 s for the runner's commits until the read model shows version N or
//     later, else the answer is 503 with Retry-After (query.ErrStale),
//     never an older view. The commands still answer the aggregate's view and version.
//   - The Redis queue cache (queue:{playerId}, DESIGN.md's "queue" family)
//     is a read-through cache in front of that read: a GET answers a
//     cached view when its version is at least the minVersion asked for,
//     else it reads the read model (waiting as above) and caches what it
//     read. Every successful command and the hub's change sink put their
//     views in it too, conditional on the version, so the cache is never
//     older than what was put in it and may run ahead of the read model by
//     a few milliseconds; a view read from it is still one consistent
//     version of the queue. Without Redis nothing is cached and every GET
//     reads the read model.
//   - TASKQUEUE_ANALYST_PASSWORD (PostgreSQL only): after the migrations
//     every start runs EnsureAnalystRole, which creates the read-only role
//     taskqueue_analyst (or sets its password when it exists) and grants it
//     SELECT in the server's schema, by re-running migration 0014 with the
//     password set for its transaction only. A migration runs once per
//     database; this step runs every time, so a changed password takes
//     effect on the next start. `taskqueue migrate up` does the same. The
//     password is never logged and errors carry no statement text.
//   - Tracing (package tracing): the store, the commands, the projections
//     and the hub's subscription are decorated, and tracing.HTTP wraps the
//     whole handler outside web's request ID, so one change is one trace.
//     Spans are exported only when cmd/taskqueue's serve set up an OTLP
//     exporter (OTEL_EXPORTER_OTLP_ENDPOINT).
package app

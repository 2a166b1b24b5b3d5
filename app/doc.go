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
//   - On SQLite and PostgreSQL the read side runs inside the app: the
//     projections runner (queues, player_progress, analytics) follows the
//     log into the same database, the history's retention sweeps hourly,
//     GET .../history, GET /api/players/{id}/progress and
//     GET /api/analytics/{report} read it, and /readyz fails while a
//     projection has failed. The processor (schedule, due loop, command
//     bus) runs there too and completes repetitions on time; its dead
//     letter queue backs /api/admin/deadletters. The cleanup stops them
//     before closing the store. With KurrentDB neither is wired yet
//     (history, progress, analytics, dead letters and the admin projection
//     routes answer 501; repetitions complete only when the player's next
//     command catches up).
//   - The realtime hub (GET /api/ws) follows the log with one
//     subscription; on SQLite and PostgreSQL it delivers a batch only after
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
//   - GET /api/queue/{playerId} reads the aggregate through the command
//     side's cache (always as of the last command), not the read model,
//     behind the Redis queue cache when Redis is configured (a processor's
//     completion reaches that cache when the hub dispatches it).
//   - Tracing (package tracing): the store, the commands, the projections
//     and the hub's subscription are decorated, and tracing.HTTP wraps the
//     whole handler outside web's request ID, so one change is one trace.
//     Spans are exported only when cmd/taskqueue's serve set up an OTLP
//     exporter (OTEL_EXPORTER_OTLP_ENDPOINT).
package app

// Package metrics owns taskqueue's Prometheus registry (/metrics) and every
// collector on it. Other packages do not import Prometheus: the wiring (app)
// hands them the small functions and decorators here.
//
//   - HTTP: Registry.HTTP wraps the router (inside or outside chi) and counts
//     requests by route pattern, method and status, with a latency
//     histogram per route (WebSocket upgrades are counted, not timed).
//   - Commands: Registry.ObserveCommand is the observe function of
//     command.Metrics: commands by name and outcome (ok, rejected, conflict,
//     precondition_failed, canceled, error), with a duration histogram.
//   - The event log: Registry.Store decorates an eventstore.Store: events
//     appended by type, repetitions completed and failed (RepetitionCompleted
//     and TaskFailed events), the processor's lateness (how long after its due
//     time a repetition completed by the "system" actor was appended), and
//     database errors by operation (an error that is not bad input, a wrong
//     version, a closed store or a cancelled context).
//   - Redis: Registry.RedisHook is a go-redis hook counting errors by
//     command (redis.Nil is not an error).
//   - Read at scrape time from Sources: active queues, projection position,
//     lag (events and seconds) and state, WebSocket connections and slow
//     clients cut off, dead letters waiting. A source that fails is skipped
//     for that scrape and counted in taskqueue_scrape_errors_total.
//   - The Go runtime and the process (go_*, process_*).
//
// Names are a contract with deploy/prometheus/alerts.yml and
// deploy/grafana/taskqueue.json: renaming a metric or a label breaks the
// alerts and the dashboard silently. Every name starts with "taskqueue_".
//
// Concurrency: a Registry and everything it returns are safe for concurrent
// use. SetSources may be called once the sources exist (after New).
package metrics

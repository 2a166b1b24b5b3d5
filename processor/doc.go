// Package processor owns the part of taskqueue that advances every running
// queue on time, whether or not its player is connected: the schedule of
// due repetitions, the due loop that claims and completes them, the
// watermill command bus they travel on, the dead letter queue, and the
// relay that publishes integration events (docs/EVENTS.md).
//
// # The schedule
//
// Schedule is a projection on projections.Runner (its rows and its
// checkpoint commit in one transaction; its catch-up in batches of 1,000
// events, so that a cold start claims its first due queues after the
// first batch, not after the whole log): table processor_schedule holds
// one row per player with a running repetition (stream, task, repetition
// number, due time). RepetitionStarted writes the row, RepetitionCompleted
// and RepetitionCancelled of that repetition delete it. The name
// "processor_schedule" keys its checkpoint: renaming it rebuilds it.
//
// # The due loop
//
// Processor.Run runs the schedule, the command handlers and the due loop.
// The loop claims up to BatchSize rows due at or before Clock.Now() that no
// live claim holds (table processor_claims: a lease per stream for one
// repetition, expiring after ClaimTTL; see claimDue), and sends each
// partition's share as one command.CompleteRepetitions, a completion per
// repetition with the idempotency key command.CompletionKey(task, number):
// its handler loads the queues it has not cached in one ReadStreams call,
// decides each, and appends them all with one AppendMany (one transaction,
// one wake-up); a completion whose queue another writer changed is decided
// again alone, and one that fails is sent on alone as CompleteRepetition
// (its retries and dead letter are a single command's). The aggregate completes the
// repetition at its due time, not at the time the command runs, starts the
// next one at that due time, and completes everything else due by now
// (offline progress, up to domain.MaxCatchUp per command; the next row is
// claimed at once for the rest). The processor's command handlers are
// optimistic (command.Config.Optimistic): a completion on a queue they have
// cached is one append, without reading the stream first, as long as no
// other writer appended to it since. Between polls the loop sleeps until the
// next due time, at most MaxSleep, and wakes early when the schedule
// commits a change.
//
// A repetition that has been due for longer than OfflineCap (default
// 24 h) is not completed normally: the loop sends StopOfflineQueue, whose
// handler completes, with the command clock pinned at due+OfflineCap,
// every repetition due by then (each at its due time) and stops the queue
// there with a reason the player sees. (The command clock is pinned through
// a second set of command handlers whose clock is set per command; such
// commands run one at a time per process.)
//
// # Never twice
//
// Several instances (processes) may run on one PostgreSQL: each claims
// different rows (a claim is taken by INSERT ... ON CONFLICT DO UPDATE
// WHERE the old claim expired, which the row lock serializes). Should two
// ever send the same completion (a claim expired while its command was
// still queued), the second is a no-op: the command's idempotency key and
// derived event IDs, the aggregate's exact expected version, and the rule
// that completing a repetition that is no longer running decides nothing.
// A killed instance's claims expire after ClaimTTL (default 5 s) and are
// taken by the others. On SQLite (one process) the same statements run.
//
// # The command bus
//
// Commands travel through watermill's components/cqrs CommandBus to a
// CommandProcessor whose router has CorrelationID and Recoverer, and on
// each command handler PoisonQueue (outermost) and Retry (exponential
// backoff, MaxRetries; bad input is not retried). A command that still
// fails goes to the poison topic "<prefix>.commands.deadletters"; a handler
// stores it in processor_dead_letters with the error (DeadLetters: List,
// Retry). Topics are "<prefix>.commands.<Command>.p<partition>": a
// player's commands always use one partition (in order), partitions are
// handled concurrently. Embedded default: one in-process GoChannel. With
// Config.Redis: Redis streams (watermill-redisstream), each handler in a
// consumer group named after it, so each command is handled by one
// instance. Renaming a command type or TopicPrefix strands the messages
// queued under the old names. The due loop sends a batch's partitions
// concurrently; on GoChannel a send returns only when the command was
// handled. While a full batch is being sent the loop claims the next one
// (more may be due), and sends it when the first is done: it holds at most
// two batches' claims.
//
// # Shutdown and faults
//
// When Run's context ends the loop stops claiming, the router lets the
// commands in flight finish (up to 30 s), and the instance deletes its
// claims so others take its rows at once.
//
// A transient failure (internal/faults) is never recorded as a failure of
// the data: the due loop (every database call bounded by QueryTimeout) and
// the commands (transientRetry, innermost on each handler, each attempt
// bounded by CommandTimeout) retry it with a faults.Outage's backoff until
// the dependency is back; the poison queue refuses transient errors, so
// only a failure the same command would meet again is dead-lettered. Each
// outage is logged when it starts and when it ends and told to
// Config.Observer ("processor due loop", "processor commands", "processor
// redis"); the Redis subscribers' transient errors count toward the Redis
// outage instead of being logged (outageLogger). When Redis comes back
// without its data, tendRedis recreates the consumer groups and releases
// this instance's claims, since the commands sent before are gone. No
// circuit breaker: the due loop's backoff already probes like a half-open
// breaker, and failing commands at once would only delay them.
//
// A killed instance's work is taken over within ClaimTTL + 1 s on every
// transport (docs/EVENTS.md, "Failover"): its claims expire, and with Redis
// the commands its consumers had read are taken once its alive key expired
// (bus.shouldClaim).
//
// # The relay
//
// Relay publishes the integration events (docs/EVENTS.md) at least once.
// With several instances only one relays at a time: the app runs it under
// RunLeased with RelayLeaseName, a lease row in processor_leases renewed
// every TTL/3 (default TTL 10 s); a stopped holder releases it (another
// takes over at once), a killed one's lease expires and is taken by the
// next instance that asks. A holder that cannot renew its lease within
// TTL·2/3 (the database refused or partitioned: every lease call has a
// deadline) stops relaying before the lease expires. A holder that lost
// its lease while publishing may publish a batch the next holder publishes
// again; the checkpoint is a compare-and-set, so it never goes back, and
// consumers deduplicate. The relay retries transient failures forever
// from its checkpoint (faults.Outage: components "relay integration",
// "relay integration publisher", "lease relay:integration").
//
// Concurrency: Processor, DeadLetters and Relay are safe for concurrent
// use; Run may be called once per Processor.
package processor

// Package relay owns taskqueue's integration events (docs/EVENTS.md,
// api/asyncapi): Relay tails the event log from a durable checkpoint and
// publishes them at least once, in log order; RunLeased lets one instance
// relay at a time; the Redis stream entry format (wire.go) and the
// PostgreSQL outbox used without Redis (outbox.go); and what a forgotten
// player leaves in them (forget.go).
//
// It must never publish anything that is not from the log, nor move its
// checkpoint back: a type, topic or field name is a contract with every
// consumer, and renaming one breaks them.
//
// Where to look: relay.go (the events, the relay, its checkpoint),
// lease.go, wire.go, outbox.go. The design (the lease, faults):
// docs/ARCHITECTURE.md, "relay".
//
// Concurrency: Relay is safe for concurrent use; Run may be called once
// per Relay.
package relay

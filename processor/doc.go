// Package processor advances every running queue on time, whether or not its
// player is connected: the schedule projection of due repetitions, the due
// loop that claims and completes them in batches, the watermill command bus
// they travel on, and the dead letter queue. The relay of integration
// events is package relay.
//
// It must never complete a repetition twice nor record a transient error as
// a failure of the data: claims are leases per stream, completions carry
// idempotency keys and exact expected versions, and transient errors are
// retried until the dependency is back, never dead-lettered.
//
// Where to look: schedule.go (the projection), processor.go and claims.go
// (the due loop and claims), bus.go (topics, partitions, consumer groups),
// deadletters.go, forget.go (a forgotten player's commands). The design
// (batches, offline cap, several instances, shutdown and faults):
// docs/ARCHITECTURE.md, "processor".
//
// Concurrency: Processor and DeadLetters are safe for concurrent use; Run
// may be called once per Processor.
package processor

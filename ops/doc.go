// Package ops owns what an operator does to a running taskqueue beside
// serving it: replaying read models, listing a player's events, time travel
// (a queue as it was at a moment), moving the log between stores (export to
// JSON lines, import into an empty store), and forgetting a player
// (ForgetPlayer). The `taskqueue replay|events|queue|export|import|forget`
// commands and the admin routes are thin wrappers over the functions here:
// each takes the stores it needs and an io.Writer.
//
// The event line (EventLine) is a contract with every export already
// written: add fields, never rename them. Import writes into an empty store
// only, and checks the whole input before appending anything.
//
// The design (the event line, forgetting, import, moments, bounded replay):
// docs/ARCHITECTURE.md, "ops".
//
// Concurrency: every function here is safe to call concurrently with a
// running service on the same stores.
package ops

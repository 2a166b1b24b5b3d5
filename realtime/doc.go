// Package realtime owns GET /api/ws, the WebSocket through which players
// watch their queue move and admins watch every queue, with resume by global
// log position. The protocol is docs/REALTIME.md and
// api/asyncapi/asyncapi.yaml (the tests validate every message against it).
//
// A Hub follows the log with one subscription per process and fans each
// event out to the sockets of its queue; an instance's own appends are
// delivered from memory as soon as they are durable (LocalAppends). It must
// never send anything that did not come from the event store, skip an event
// or send one twice across a resume, nor block on a slow socket (it is cut
// off with 4408).
//
// The design (resume without gap or duplicate, local delivery, several
// instances, the read-model watermark, what a socket costs):
// docs/ARCHITECTURE.md, "realtime".
//
// Concurrency: Hub is safe for concurrent use; a socket has at most one
// writer at a time.
package realtime

// Package realtime owns the live face of taskqueue: GET /api/ws, the
// WebSocket through which players watch their queue move and admins watch
// every queue, with resume by global log position. The protocol (messages,
// close codes) is documented in docs/REALTIME.md; the names there are a
// contract with the web app and other clients.
//
// # One subscription, many sockets
//
// A Hub follows the event log with ONE store subscription per process
// (filtered to the queue streams) and fans each event out to the sockets
// subscribed to its queue and to the admins watching all. It folds the
// queue aggregate of every watched player from the log (domain.Queue, an LRU
// of Config.ViewCacheSize players), so the message of a command's last
// event carries the queue view right after that command: a client just
// renders (the views between one command's events are never sent; see
// endsCommand). The event store is
// the only source of what is sent; nothing else (a Redis message, a command
// result) ever becomes a message.
//
// # Local delivery
//
// The instance's own appends need not wait for the log: LocalAppends, a
// decorator of the store the commands append through, reads each durable
// append to a watched queue back from its stream and the hub delivers it to
// the queue's players at once (not waiting for the read model), when the
// stream's previous event was delivered already; the log's copy then goes to
// the admins only. Everything else still comes from the log.
//
// # Resume without gap or duplicate
//
// A subscribe names the last position the client saw (since). The hub
// registers the socket for live messages FIRST, then reads what the client
// missed from the log (ReadAll filtered to the queue's stream, at most
// MaxResumeEvents, else a reset with a fresh snapshot), sends it, and then
// streams the live buffer, dropping every message at or below the last
// position sent. Any event the hub dispatched before the registration is in
// the log the catch-up reads; any later one is in the buffer. A resume
// reads only once the log's readable part has reached the last event
// committed of the stream (readableHead; on PostgreSQL an older open
// transaction holds later commits back), so everything answered before the
// subscribe comes before subscribed.
//
// The protocol is specified in api/asyncapi/asyncapi.yaml (AsyncAPI 3.0);
// the tests validate every message the server sends against it. Start
// subscribes before the hub serves anything, and a failed subscription
// resumes from the last position it delivered, so the hub itself never
// skips an event.
//
// # Slow clients
//
// Every socket has a bounded buffer (SendBuffer). The dispatcher never
// blocks on a socket: when a buffer is full that socket is cut off with
// CloseSlowConsumer (4408) and the others go on. Every write has a deadline
// (WriteTimeout); idle sockets are pinged every PingInterval.
//
// # Several instances
//
// Each instance's hub reads the shared log itself: with PostgreSQL, every
// instance's subscription sees every commit (LISTEN/NOTIFY wakes it), so
// fanout across instances needs no Redis. A Waker (Redis pub/sub,
// redisx.Wakeups) is an optional second wake-up: each hub announces the
// position it reached, and a hub that hears of a position beyond its own
// reads the log at once. Announcements lost during a Redis reconnect cost
// nothing but latency: the hub reads by position, from where it is.
//
// # Ordering with the read model
//
// With a Watermark (the queue projection's checkpoint), each batch is
// delivered only after the read model has applied it (at most
// MaxWatermarkWait), so a REST read after a message never shows older
// state.
//
// # What a socket holds
//
// The HTTP handler authenticates, takes the subscribe, writes the catch-up
// and subscribed, and returns: a live socket holds one goroutine,
// coder/websocket's reader of control frames, which ends the subscriber
// when the connection ends. Live messages wait in a queue that is nil while
// idle; a burst starts one writer goroutine that ends with it. Pings and
// the token's expiry are runtime timers; the read and write buffers are a
// few hundred bytes (smallBuffers), and there is no compression.
//
// Concurrency: Hub is safe for concurrent use; a socket has at most one
// writer at a time (its handler during the catch-up, then its flush).
package realtime

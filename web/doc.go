// Package web is the HTTP face of taskqueue: the chi router of every route
// in docs/API.md, authentication and authorization (web/auth), the one
// place where errors become problem+json responses, the middleware every
// request goes through, and the embedded web app.
//
// # The contract
//
// api/openapi.yaml (package api) specifies every route, and the server
// serves it at GET /api/openapi.json. This package's tests hold the code to
// it: every response of the HTTP tests and of FuzzAPI is validated against
// it (contract_test.go), and the router's routes are the spec's paths
// (TestSpecCoversEveryRoute). A new route, status, header or response
// field goes into the spec in the same commit.
//
// # Requests
//
// Every request passes, in order: request ID (the client's X-Request-Id
// when it is 1–128 printable characters, else a new UUIDv7; echoed in the
// response and attached to every log line logged with the request's context
// through LogHandler), the access log with panic recovery (a panic is a 500
// "internal" problem), security headers. Under /api also: CORS for the
// configured origins (none by default; a preflight from any other origin is
// 403), the 64 KiB body limit (413), Cache-Control: no-store, and on the
// queue routes the bearer token (401), the session check when configured
// (Config.Sessions: a token whose "sid" was revoked or expired is 401), the
// player check (403: a player acts on its own queue only; admin and system
// on any), and on the command routes (POST, PUT, DELETE) the rate limit
// when configured (Config.CommandLimit: 429 rate-limited with Retry-After).
// POST /api/auth/refresh and /logout sit behind the token and session
// check; GET /api/ws authenticates itself (the realtime hub).
//
// # Errors
//
// Handlers never choose a status for an error: they pass it to writeProblem,
// whose problemFor maps errors of domain/, command/, eventstore/ and this
// package to the problem types of docs/API.md (ProblemType). A type name is
// part of the API: renaming one breaks clients. An error problemFor does not
// know is a 500 whose detail stays in the log.
//
// # Commands
//
// Commands run through the Queues port (implemented in app/ over command/).
// Each carries its Idempotency-Key (command/ answers a retry with the first
// result and refuses the key reused with other content) and If-Match as the
// version the queue must have. Successes carry ETag: "<version>".
//
// # The web app
//
// web/dist (the built web/app, owned by the web app's build) is embedded
// with //go:embed all:dist and served at /: files under /assets with
// Cache-Control immutable (their names carry a content hash), every other
// file and index.html with no-cache, unknown paths outside /api answered
// with index.html (the app routes in the browser), all with a strict
// Content-Security-Policy: no inline script or style, no other origin,
// WebSockets to the same host only.
//
// Server is safe for concurrent use.
package web

// Package redisx owns taskqueue's Redis roles (github.com/redis/go-redis/v9):
// sessions, rate limits, the queue cache, progress entries, presence and
// the realtime hubs' wake-ups, each optional: without TASKQUEUE_REDIS_URL
// every role works in-process. (It is not named redis so that it never
// clashes with go-redis's package name.)
//
// Key families and channels are a contract between running instances:
// renaming one splits a fleet in the middle of a deploy. Every role goes
// through one Client, which marks Redis down on a failure and falls back to
// the in-process behaviour until a background ping answers; Redis is never
// required.
//
// The key families, Redis Cluster and what each role does while Redis is
// away: docs/ARCHITECTURE.md, "redisx".
//
// Every type is safe for concurrent use.
package redisx

// Package redisx owns the Redis plumbing that taskqueue's Redis roles
// share (github.com/redis/go-redis/v9): the Client (one connection with
// its health: marked down on a failure, back when a ping answers, each
// logged once), TASKQUEUE_REDIS_URL's targets (one server or a Redis
// Cluster), the key prefix, go-redis's own log, and forgetting a player's
// keys. It is not named redis so that it never clashes with go-redis's
// package name.
//
// The roles are packages of their own, each with its in-process fallback
// and a contract suite: sessions, ratelimit, queuecache, presence,
// wakeups. Redis is never required: every role works without it.
//
// Key families and channels are a contract between running instances:
// renaming one splits a fleet in the middle of a deploy. The families,
// Redis Cluster and what each role does while Redis is away:
// docs/ARCHITECTURE.md, "Redis roles".
//
// Every type is safe for concurrent use.
package redisx

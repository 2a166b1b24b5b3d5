package queuecache

import "context"

// Flush is Cache.flush for the external tests (it runs when Redis
// comes back after an outage).
func Flush(ctx context.Context, q *Cache) error { return q.flush(ctx) }

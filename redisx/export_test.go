package redisx

import "context"

// Flush is QueueCache.flush for the external tests (it runs when Redis
// comes back after an outage).
func Flush(ctx context.Context, q *QueueCache) error { return q.flush(ctx) }

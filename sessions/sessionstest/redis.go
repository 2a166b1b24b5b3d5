package sessionstest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/internal/redistest"
	"github.com/taskqueue/taskqueue/sessions"
)

// Redis is the sessions' backend on srv (one server or a cluster): each
// Instance is another client, as another instance of the service; Age
// shortens the TTL of every session key (the session: family) by d, so
// that Redis expires them itself.
func Redis(t *testing.T, srv redistest.Server) Backend {
	admin := srv.OpenUp(t, nil)
	return Backend{
		Instance: func() *sessions.Sessions {
			s := sessions.New(srv.OpenUp(t, nil))
			t.Cleanup(s.Close)
			return s
		},
		Age: func(d time.Duration) {
			err := admin.EachServer(context.Background(), func(ctx context.Context, rdb redis.UniversalClient) error {
				iter := rdb.Scan(ctx, 0, srv.Prefix+"session:*", 1000).Iterator()
				for iter.Next(ctx) {
					ttl, err := rdb.PTTL(ctx, iter.Val()).Result()
					if err != nil {
						return err
					}
					if ttl <= d {
						err = rdb.Del(ctx, iter.Val()).Err()
					} else {
						err = rdb.PExpire(ctx, iter.Val(), ttl-d).Err()
					}
					if err != nil {
						return err
					}
				}
				return iter.Err()
			})
			if err != nil {
				t.Fatalf("age the sessions in redis by %v: %v", d, err)
			}
		},
	}
}

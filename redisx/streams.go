package redisx

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// DeleteFromStreams deletes, from each of streams, the entries whose field
// (a string) matches, reading each stream in pages of 1,000; it returns how
// many it deleted. The processor's command streams and the relay's
// integration topics use it to forget a player.
func DeleteFromStreams(ctx context.Context, rdb redis.UniversalClient, streams []string, field string, match func(value string) bool) (int64, error) {
	var deleted int64
	for _, stream := range streams {
		from := "-"
		for {
			msgs, err := rdb.XRangeN(ctx, stream, from, "+", 1000).Result()
			if err != nil {
				return deleted, fmt.Errorf("read stream %s: %w", stream, err)
			}
			var ids []string
			for _, m := range msgs {
				if v, _ := m.Values[field].(string); match(v) {
					ids = append(ids, m.ID)
				}
			}
			if len(ids) > 0 {
				n, err := rdb.XDel(ctx, stream, ids...).Result()
				if err != nil {
					return deleted, fmt.Errorf("delete from stream %s: %w", stream, err)
				}
				deleted += n
			}
			if len(msgs) < 1000 {
				break
			}
			from = "(" + msgs[len(msgs)-1].ID
		}
	}
	return deleted, nil
}

package relay

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// ForgetInStreams deletes player's messages from the integration streams
// on Redis of topics (a forgotten player: docs/API.md, "Forgetting a
// player"); a consumer that had not read them never will. It reads each
// stream whole, a page at a time (at most IntegrationStreamMaxlen
// entries): forgetting is rare. player.forgotten's own stream is not among
// topics: its message must reach the consumers.
func ForgetInStreams(ctx context.Context, rdb redis.UniversalClient, topics []string, player string) (int64, error) {
	return deleteFromStreams(ctx, rdb, topics, func(payload string) bool {
		var ev struct {
			PlayerID string `json:"playerId"`
		}
		return json.Unmarshal([]byte(payload), &ev) == nil && ev.PlayerID == player
	})
}

// deleteFromStreams deletes the entries of streams whose payload field
// matches.
func deleteFromStreams(ctx context.Context, rdb redis.UniversalClient, streams []string, match func(payload string) bool) (int64, error) {
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
				if payload, _ := m.Values[FieldPayload].(string); match(payload) {
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

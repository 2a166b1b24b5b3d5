package relay

import (
	"context"
	"encoding/json"

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/redisx"
)

// ForgetInStreams deletes player's messages from the integration streams
// on Redis of topics (a forgotten player: docs/API.md, "Forgetting a
// player"); a consumer that had not read them never will. It reads each
// stream whole, a page at a time (at most IntegrationStreamMaxlen
// entries): forgetting is rare. player.forgotten's own stream is not among
// topics: its message must reach the consumers.
func ForgetInStreams(ctx context.Context, rdb redis.UniversalClient, topics []string, player string) (int64, error) {
	return redisx.DeleteFromStreams(ctx, rdb, topics, FieldPayload, func(payload string) bool {
		var ev struct {
			PlayerID string `json:"playerId"`
		}
		return json.Unmarshal([]byte(payload), &ev) == nil && ev.PlayerID == player
	})
}

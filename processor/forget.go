package processor

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/redisx"
)

// ForgetInCommandStreams deletes the commands that name player from the
// processor's command streams on Redis (topicPrefix's
// "<prefix>.commands.<name>.p<n>"). A command of a batch names several
// players and goes whole: that is safe, since the schedule, not the stream,
// is the source of truth (a command not yet handled is sent again once its
// claim expires; see commandStreamMaxlen).
func ForgetInCommandStreams(ctx context.Context, rdb redis.UniversalClient, topicPrefix, player string) (int64, error) {
	var streams []string
	iter := rdb.Scan(ctx, 0, topicPrefix+".commands.*.p*", 1000).Iterator()
	for iter.Next(ctx) {
		streams = append(streams, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return 0, fmt.Errorf("forget %s in the command streams: %w", player, err)
	}
	quoted := `"` + player + `"`
	return redisx.DeleteFromStreams(ctx, rdb, streams, commandPayloadField, func(payload string) bool { return strings.Contains(payload, quoted) })
}

// commandPayloadField is the field of a command stream entry that holds
// the command (watermill-redisstream's default marshaller, which the bus
// uses).
const commandPayloadField = "payload"

package redisx

import (
	"context"
	"fmt"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/internal/faults"
)

// ForgetPlayer deletes what Redis keeps of player (docs/API.md,
// "Forgetting a player"): the keys of every family named by player
// (queue: and progress: of package queuecache, rate:ratelimit: of
// ratelimit, presence: of presence) and the player's place in every
// instance's presence set (presence-instances, presence-instance:). A
// family renamed in its package must be renamed here. Sessions are revoked
// by sessions.Sessions.RevokePlayer. A nil c keeps nothing; with Redis
// down it fails with an error wrapping faults.ErrUnavailable, and
// forgetting is retried.
func (c *Client) ForgetPlayer(ctx context.Context, player domain.PlayerID) error {
	if c == nil {
		return nil
	}
	if !c.Up() {
		return fmt.Errorf("forget %s in redis: %w", player, faults.ErrUnavailable)
	}
	p := string(player)
	keys := []string{c.Key("queue:", p), c.Key("progress:", p), c.Key("rate:ratelimit:", p), c.Key("presence:", p)}
	err := c.rdb.Del(ctx, keys...).Err()
	if err == nil {
		var instances []string
		if instances, err = c.rdb.ZRange(ctx, c.Key("presence-instances", ""), 0, -1).Result(); err == nil {
			for _, id := range instances {
				if err = c.rdb.SRem(ctx, c.Key("presence-instance:", id), p).Err(); err != nil {
					break
				}
			}
		}
	}
	c.Observe(ctx, err)
	if err != nil {
		return fmt.Errorf("forget %s in redis: %w", player, err)
	}
	return nil
}

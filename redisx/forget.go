package redisx

import (
	"context"
	"fmt"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/internal/faults"
)

// ForgetPlayer deletes what Redis keeps of player (docs/API.md,
// "Forgetting a player") in the key families named by player: queue: and
// progress: of package queuecache, rate:ratelimit: of ratelimit. A family
// renamed in its package must be renamed here. The fleet's presence is
// forgotten by presence.Presence.Forget, sessions by
// sessions.Sessions.RevokePlayer. On a Redis Cluster the keys are in
// several slots: each is deleted on its own (Client.Del). A nil c keeps
// nothing; with Redis down it fails with an error wrapping
// faults.ErrUnavailable, and forgetting is retried.
func (c *Client) ForgetPlayer(ctx context.Context, player domain.PlayerID) error {
	if c == nil {
		return nil
	}
	if !c.Up() {
		return fmt.Errorf("forget %s in redis: %w", player, faults.ErrUnavailable)
	}
	p := string(player)
	err := c.Del(ctx, []string{c.Key("queue:", p), c.Key("progress:", p), c.Key("rate:ratelimit:", p)})
	c.Observe(ctx, err)
	if err != nil {
		return fmt.Errorf("forget %s in redis: %w", player, err)
	}
	return nil
}

package redisx

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/internal/faults"
)

// ForgetPlayer deletes what Redis keeps of player (docs/API.md,
// "Forgetting a player"): the keys of every family named by player
// (queue:, progress:, rate:ratelimit:, presence:) and the player's place in
// every instance's presence set. Sessions are revoked by
// Sessions.RevokePlayer. A nil c keeps nothing; with Redis down it fails
// with an error wrapping faults.ErrUnavailable, and forgetting is retried.
func (c *Client) ForgetPlayer(ctx context.Context, player domain.PlayerID) error {
	if c == nil {
		return nil
	}
	if !c.Up() {
		return fmt.Errorf("forget %s in redis: %w", player, faults.ErrUnavailable)
	}
	p := string(player)
	keys := []string{c.Key(queueFamily, p), c.Key(progressFamily, p), c.Key("rate:ratelimit:", p), c.Key(presenceFamily, p)}
	err := c.rdb.Del(ctx, keys...).Err()
	if err == nil {
		var instances []string
		if instances, err = c.rdb.ZRange(ctx, c.Key(instancesKey, ""), 0, -1).Result(); err == nil {
			for _, id := range instances {
				if err = c.rdb.SRem(ctx, c.Key(instanceFamily, id), p).Err(); err != nil {
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

// RevokePlayer revokes every session of player, as Revoke does one (the
// sockets of those sessions close on every instance), and returns how many
// it found. On Redis it scans session:*, once per call: forgetting is rare.
func (s *Sessions) RevokePlayer(ctx context.Context, player string) (int, error) {
	s.mu.Lock()
	var sids []string
	for sid, sess := range s.local {
		if sess.PlayerID == player {
			sids = append(sids, sid)
		}
	}
	s.mu.Unlock()
	for _, sid := range sids {
		s.revokedHere(sid)
	}
	n := len(sids)
	if s.durable != nil {
		m, err := s.durable.DeletePlayer(ctx, player)
		if err != nil {
			return n, fmt.Errorf("revoke the sessions of %s: %w", player, err)
		}
		return n + m, nil
	}
	if s.c == nil {
		return n, nil
	}
	if !s.c.Up() {
		return n, fmt.Errorf("revoke the sessions of %s: %w", player, faults.ErrUnavailable)
	}
	iter := s.c.rdb.Scan(ctx, 0, s.c.Key(sessionFamily, "*"), 1000).Iterator()
	for iter.Next(ctx) {
		b, err := s.c.rdb.Get(ctx, iter.Val()).Bytes()
		if err != nil {
			continue // expired meanwhile
		}
		var sess Session
		if json.Unmarshal(b, &sess) != nil || sess.PlayerID != player {
			continue
		}
		if err := s.Revoke(ctx, sess.ID); err != nil {
			return n, err
		}
		n++
	}
	if err := iter.Err(); err != nil {
		s.c.Observe(ctx, err)
		return n, fmt.Errorf("revoke the sessions of %s: %w", player, err)
	}
	return n, nil
}

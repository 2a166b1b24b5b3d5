package realtime

import (
	"context"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// presenceTimeout bounds one call to Presence.
const presenceTimeout = 5 * time.Second

// connectedLocked counts a player's own connection; the first one publishes
// PlayerOnline unless the player was still online (a reconnect within the
// grace period, which cancels the pending PlayerOffline). h.mu is held.
func (h *Hub) connectedLocked(player domain.PlayerID) {
	if h.cfg.Presence == nil {
		return
	}
	p := h.online[player]
	if p == nil {
		p = &presenceState{}
		h.online[player] = p
	}
	p.conns++
	if p.offline != nil {
		p.offline.Stop()
		p.offline = nil
	}
	if !p.online {
		p.online = true
		h.publishPresence(player, true, eventstore.Position{})
	}
}

// disconnectedLocked uncounts a player's own connection; the last one
// schedules PlayerOffline after the grace period. h.mu is held.
func (h *Hub) disconnectedLocked(player domain.PlayerID, last eventstore.Position) {
	if h.cfg.Presence == nil {
		return
	}
	p := h.online[player]
	if p == nil {
		return
	}
	if p.last.Less(last) {
		p.last = last
	}
	p.conns--
	if p.conns > 0 || h.closed {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(h.cfg.OfflineGrace, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.online[player] != p || p.offline != t || p.conns > 0 {
			return // reconnected, or a newer timer
		}
		delete(h.online, player)
		if p.online && !h.closed {
			h.publishPresence(player, false, p.last)
		}
	})
	p.offline = t
}

// publishPresence calls Presence in its own goroutine, so a slow publisher
// never holds the hub.
func (h *Hub) publishPresence(player domain.PlayerID, online bool, last eventstore.Position) {
	at := h.cfg.Now()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
		defer cancel()
		var err error
		if online {
			err = h.cfg.Presence.PlayerOnline(ctx, player, at)
		} else {
			err = h.cfg.Presence.PlayerOffline(ctx, player, at, last)
		}
		if err != nil {
			h.log.Warn("publish presence", "player", player, "online", online, "err", err)
		}
	}()
}

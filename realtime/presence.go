package realtime

import (
	"context"
	"sync"
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

// presenceCall is one pending call to Presence.
type presenceCall struct {
	online bool
	at     time.Time
	last   eventstore.Position
}

// presenceCalls queues each player's calls to Presence so that they reach
// it in the order the hub made them (an offline and the next online of a
// quick reconnect must not cross: a shared presence would then forget a
// connected player). A player has an entry while a goroutine drains it.
type presenceCalls struct {
	mu     sync.Mutex
	queues map[domain.PlayerID][]presenceCall
}

// publishPresence calls Presence in a goroutine of the player's own, in
// order, so a slow publisher never holds the hub.
func (h *Hub) publishPresence(player domain.PlayerID, online bool, last eventstore.Position) {
	c := presenceCall{online: online, at: h.cfg.Now(), last: last}
	q := &h.presence
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queues == nil {
		q.queues = map[domain.PlayerID][]presenceCall{}
	}
	pending, running := q.queues[player]
	q.queues[player] = append(pending, c)
	if running {
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			q.mu.Lock()
			pending := q.queues[player]
			if len(pending) == 0 {
				delete(q.queues, player)
				q.mu.Unlock()
				return
			}
			c := pending[0]
			q.queues[player] = pending[1:]
			q.mu.Unlock()
			h.callPresence(player, c)
		}
	}()
}

func (h *Hub) callPresence(player domain.PlayerID, c presenceCall) {
	ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
	defer cancel()
	var err error
	if c.online {
		err = h.cfg.Presence.PlayerOnline(ctx, player, c.at)
	} else {
		err = h.cfg.Presence.PlayerOffline(ctx, player, c.at, c.last)
	}
	if err != nil {
		h.log.Warn("publish presence", "player", player, "online", c.online, "err", err)
	}
}

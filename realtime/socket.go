package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/internal/problem"
)

// maxClientMessage bounds a client's message.
const maxClientMessage = 8 << 10

// Errors of Serve for a request refused before the upgrade. Each wraps
// what the HTTP layer answers by (web: problem+json): auth.ErrUnauthorized
// (401) or faults.ErrUnavailable (503, come back later).
var (
	// ErrNotRunning: the hub is not started yet, or closed.
	ErrNotRunning = fmt.Errorf("the realtime hub is not running: %w", faults.ErrUnavailable)
	// ErrTokenUnchecked: the provider's keys or the sessions cannot be
	// reached, so the token may be fine: the client should come back.
	ErrTokenUnchecked = fmt.Errorf("the token cannot be checked now: %w", faults.ErrUnavailable)
)

// Serve serves GET /api/ws: it authenticates (Authorization header,
// ?access_token=, or a first "auth" message), upgrades, takes one
// "subscribe", replays what the client missed (or a reset), then streams
// live messages until either side closes.
//
// It returns an error only for a request it refused before the upgrade,
// having written nothing: ErrNotRunning, ErrTokenUnchecked, or an error
// wrapping auth.ErrUnauthorized (a token that is not valid). The caller
// answers it; the hub never chooses an HTTP status for an error. Once the
// upgrade was tried it returns nil: a failed handshake is answered by the
// WebSocket library (403 for a foreign origin, 426 or 400 for a request
// that is not a handshake), everything after it by close codes.
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request) error {
	h.mu.Lock()
	running := h.started && !h.closed
	h.mu.Unlock()
	if !running {
		return ErrNotRunning
	}
	var (
		principal auth.Principal
		expires   time.Time
		authed    bool
	)
	if token, ok := requestToken(r); ok {
		p, exp, err := h.authenticate(r.Context(), token)
		if err != nil {
			h.log.DebugContext(r.Context(), "websocket refused", "err", err)
			if !errors.Is(err, auth.ErrUnauthorized) && faults.Transient(err) {
				return fmt.Errorf("%w: %w", ErrTokenUnchecked, err)
			}
			if !errors.Is(err, auth.ErrUnauthorized) {
				return fmt.Errorf("%w: %w", auth.ErrUnauthorized, err)
			}
			return err
		}
		principal, expires, authed = p, exp, true
	}
	opts := &websocket.AcceptOptions{OriginPatterns: h.cfg.OriginPatterns}
	for _, o := range h.cfg.OriginPatterns {
		if o == "*" {
			opts = &websocket.AcceptOptions{InsecureSkipVerify: true}
		}
	}
	conn, err := websocket.Accept(smallBuffers{w}, r, opts)
	if err != nil {
		// Accept has answered (403 for a foreign origin, 426/400 for a
		// request that is not a WebSocket handshake).
		h.log.DebugContext(r.Context(), "websocket handshake refused", "err", err)
		return nil
	}
	conn.SetReadLimit(maxClientMessage)
	if !h.serveConn(r.Context(), conn, principal, expires, authed) {
		conn.CloseNow()
	}
	// A live socket outlives this handler: its subscriber's reader holds
	// it (subscriber), and net/http's request and buffers are freed.
	return nil
}

// requestToken returns the bearer token of the Authorization header, else
// of ?access_token=.
func requestToken(r *http.Request) (string, bool) {
	if scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		if token = strings.TrimSpace(token); token != "" {
			return token, true
		}
	}
	if token := r.URL.Query().Get("access_token"); token != "" {
		return token, true
	}
	return "", false
}

// authenticate verifies token and, when it names a session, that the
// session is active. It returns the token's expiry too
// (Principal.ExpiresAt; zero when it has none): the connection is closed
// then.
func (h *Hub) authenticate(ctx context.Context, token string) (auth.Principal, time.Time, error) {
	p, err := h.cfg.Tokens.Verify(ctx, token)
	if err != nil {
		return auth.Principal{}, time.Time{}, err
	}
	if p.SessionID != "" && h.cfg.Sessions != nil {
		ok, err := h.cfg.Sessions.Active(ctx, p.SessionID)
		if err != nil {
			return auth.Principal{}, time.Time{}, fmt.Errorf("check session: %w", err)
		}
		if !ok {
			return auth.Principal{}, time.Time{}, fmt.Errorf("%w: session revoked or expired", auth.ErrUnauthorized)
		}
	}
	return p, p.ExpiresAt, nil
}

// closeWith sends an error message, then closes with code.
func (h *Hub) closeWith(ctx context.Context, conn *websocket.Conn, code websocket.StatusCode, msg []byte, reason string) {
	if msg != nil {
		wctx, cancel := context.WithTimeout(ctx, h.cfg.WriteTimeout)
		_ = conn.Write(wctx, websocket.MessageText, msg)
		cancel()
	}
	_ = conn.Close(code, reason)
}

// readMessage reads one client message; a client silent for AuthTimeout
// is closed with CloseUnauthorized (a read whose context ends would close
// the socket without a code).
func (h *Hub) readMessage(ctx context.Context, conn *websocket.Conn) (clientMessage, error) {
	timer := time.AfterFunc(h.cfg.AuthTimeout, func() {
		_ = conn.Close(CloseUnauthorized, "no auth or subscribe message in time")
	})
	typ, b, err := conn.Read(ctx)
	if !timer.Stop() {
		return clientMessage{}, errSilent
	}
	if err != nil {
		return clientMessage{}, err
	}
	var m clientMessage
	if typ != websocket.MessageText || json.Unmarshal(b, &m) != nil {
		return clientMessage{}, errBadMessage
	}
	return m, nil
}

var (
	errBadMessage = errors.New("not a JSON text message of the protocol")
	errSilent     = errors.New("no message in time")
)

// serveConn runs a socket's protocol up to the live stream. It reports
// whether the socket went live (its subscriber owns it from then on); when
// not, the caller closes it.
func (h *Hub) serveConn(ctx context.Context, conn *websocket.Conn, principal auth.Principal, expires time.Time, authed bool) (live bool) {
	m, err := h.readMessage(ctx, conn)
	if err != nil {
		h.refuseRead(ctx, conn, err)
		return false
	}
	if !authed {
		if m.Type != TypeAuth || m.Token == "" {
			h.closeWith(ctx, conn, CloseUnauthorized, errorMessage(problem.Unauthorized, "send {\"type\":\"auth\",\"token\":…} first, or the token in the Authorization header or ?access_token="), "no token")
			return false
		}
		if principal, expires, err = h.authenticate(ctx, m.Token); err != nil {
			h.closeWith(ctx, conn, CloseUnauthorized, errorMessage(problem.Unauthorized, "the token is not valid"), "bad token")
			return false
		}
		if m, err = h.readMessage(ctx, conn); err != nil {
			h.refuseRead(ctx, conn, err)
			return false
		}
	}
	if m.Type != TypeSubscribe {
		h.closeWith(ctx, conn, CloseBadRequest, errorMessage(problem.Validation, "expected {\"type\":\"subscribe\",\"playerId\":…}"), "expected subscribe")
		return false
	}
	var player domain.PlayerID
	switch m.PlayerID {
	case AllPlayers:
		if principal.Role != auth.RoleAdmin && principal.Role != auth.RoleSystem {
			h.closeWith(ctx, conn, CloseForbidden, errorMessage(problem.Forbidden, "only an admin may watch every queue"), "forbidden")
			return false
		}
	default:
		if player, err = domain.ParsePlayerID(m.PlayerID); err != nil {
			h.closeWith(ctx, conn, CloseBadRequest, errorMessage(problem.Validation, err.Error()), "bad playerId")
			return false
		}
		if !principal.CanActOn(string(player)) {
			h.closeWith(ctx, conn, CloseForbidden, errorMessage(problem.Forbidden, "a player may watch only their own queue"), "forbidden")
			return false
		}
	}
	var since *eventstore.Position
	if m.Since != "" {
		p, err := eventstore.ParsePosition(m.Since)
		if err != nil {
			h.closeWith(ctx, conn, CloseBadRequest, errorMessage(problem.Validation, "since: "+err.Error()), "bad since")
			return false
		}
		since = &p
	}

	sub, err := h.register(principal, player, conn)
	if err != nil {
		h.closeWith(ctx, conn, CloseGoingAway, nil, "server shutting down")
		return false
	}
	// From here on only control frames are read (pongs, the close
	// handshake), by coder/websocket's reader, which outlives this
	// request; a data message closes the connection. When the connection
	// ends, however it ends, the subscriber ends with it.
	ctx = conn.CloseRead(context.WithoutCancel(ctx))
	context.AfterFunc(ctx, func() {
		sub.end()
		h.unregister(sub)
	})
	// The connection lives as long as its token: at its expiry it is
	// closed with CloseUnauthorized, "token expired" (a client reconnects
	// with a fresh token and since, and misses nothing).
	if !expires.IsZero() {
		sub.mu.Lock()
		sub.expiry = time.AfterFunc(max(0, time.Until(expires)), func() {
			sub.kick(CloseUnauthorized, ReasonTokenExpired, errorMessage(problem.Unauthorized,
				"the token expired; reconnect with a fresh token and since to resume"))
		})
		sub.mu.Unlock()
	}

	last, err := h.catchUp(ctx, conn, player, since)
	if err != nil {
		if ctx.Err() == nil {
			h.log.Warn("websocket catch-up failed", "player", player, "err", err)
			sub.kick(CloseTryAgainLater, "catch-up failed; reconnect with since", nil)
		}
		return true // closed, or closing: the reader ends the subscriber
	}
	if err := h.write(ctx, conn, subscribedMessage(player, last)); err != nil {
		return true
	}
	sub.goLive(ctx, last)
	return true
}

// refuseRead closes a connection whose first messages could not be read.
func (h *Hub) refuseRead(ctx context.Context, conn *websocket.Conn, err error) {
	if errors.Is(err, errBadMessage) {
		h.closeWith(ctx, conn, CloseBadRequest, errorMessage(problem.Validation, err.Error()), "bad message")
	}
	// Otherwise the timer has closed it (errSilent), or the client went
	// away or broke the protocol: CloseNow.
}

// write sends one message within WriteTimeout.
func (h *Hub) write(ctx context.Context, conn *websocket.Conn, msg []byte) error {
	wctx, cancel := context.WithTimeout(ctx, h.cfg.WriteTimeout)
	defer cancel()
	return conn.Write(wctx, websocket.MessageText, msg)
}

// catchUp sends what the client missed after since: the events of its queue
// (of every queue for player "") from the log, each with the queue after
// it, or a reset with a snapshot when since is absent or too far behind. It
// returns the position the client is at afterwards.
func (h *Hub) catchUp(ctx context.Context, conn *websocket.Conn, player domain.PlayerID, since *eventstore.Position) (eventstore.Position, error) {
	head, err := h.readableHead(ctx, player, since)
	if err != nil {
		return eventstore.Position{}, err
	}
	var missed []eventstore.RecordedEvent
	resume := since != nil && !head.Less(*since) &&
		(h.cfg.MaxResumeDistance < 0 || head.Seq <= since.Seq || int64(head.Seq-since.Seq) <= h.cfg.MaxResumeDistance)
	if resume {
		filter := queueFilter
		if player != "" {
			filter = eventstore.Filter{Streams: []string{player.Stream()}}
		}
		from := *since
		for len(missed) <= h.cfg.MaxResumeEvents {
			rctx, cancel := context.WithTimeout(ctx, h.cfg.ReadTimeout)
			evs, err := h.cfg.Store.ReadAll(rctx, from, filter, h.cfg.MaxResumeEvents+1-len(missed))
			cancel()
			if errors.Is(err, eventstore.ErrInvalid) {
				resume = false // a position of another store
				break
			}
			if err != nil {
				return eventstore.Position{}, fmt.Errorf("read the log after %s: %w", from, err)
			}
			if len(evs) == 0 {
				break
			}
			missed = append(missed, evs...)
			from = evs[len(evs)-1].Position
		}
		if len(missed) > h.cfg.MaxResumeEvents {
			resume = false
		}
	}
	if !resume {
		return h.reset(ctx, conn, player, head)
	}
	last := *since
	if len(missed) == 0 {
		return last, nil
	}
	last = missed[len(missed)-1].Position
	h.awaitWatermark(ctx, last)
	now := h.cfg.Now()
	queues := map[domain.PlayerID]*domain.Queue{}
	for i, e := range missed {
		p, ok := domain.PlayerFromStream(e.Stream)
		if !ok {
			continue
		}
		var queue []byte
		q, err := h.foldInto(ctx, queues, p, e)
		if err == nil && endsCommand(missed, i) {
			queue, err = queueJSON(q.View(), now)
		}
		if err != nil {
			h.log.Warn("fold the queue view for a catch-up; sending the event without it", "player", p, "err", err)
		}
		msg, err := eventMessage(p, e, queue)
		if err != nil {
			return eventstore.Position{}, err
		}
		if err := h.write(ctx, conn, msg); err != nil {
			return eventstore.Position{}, err
		}
	}
	return last, nil
}

// readableHead returns the head of the log's readable part (Store.Head),
// once a resume's catch-up can read every event it must hold: on a store
// whose readable part lags behind its commits (CommittedHeader:
// PostgreSQL, where an event committed after a transaction that is still
// open is committed, its command answered, but not yet readable), it
// waits, polling Head, until the head has reached the last event committed
// when it was called: of the player's stream, or of the whole log for all
// players. Without the wait such events came after subscribed, as live
// messages. A first connection (no since) does not wait: its reset reads
// the stream itself, to its end, whatever the horizon. Nor does a client
// that already has the stream's last event. The wait, with the reads, is
// bounded by ReadTimeout: past it the catch-up fails (CloseTryAgainLater),
// since subscribed would break its promise.
func (h *Hub) readableHead(ctx context.Context, player domain.PlayerID, since *eventstore.Position) (eventstore.Position, error) {
	rctx, cancel := context.WithTimeout(ctx, h.cfg.ReadTimeout)
	defer cancel()
	var target eventstore.Position // Start: nothing to wait for
	if h.committed != nil && since != nil {
		var err error
		if target, err = h.committedTarget(rctx, player); err != nil {
			return eventstore.Position{}, err
		}
		if !since.Less(target) {
			target = eventstore.Start // the client has it all
		}
	}
	wait := time.Millisecond
	for {
		head, err := h.cfg.Store.Head(rctx)
		if err != nil {
			return eventstore.Position{}, fmt.Errorf("read head: %w", err)
		}
		if !head.Less(target) {
			return head, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-rctx.Done():
			t.Stop()
			return eventstore.Position{}, fmt.Errorf("the log's readable head %s did not reach %s, committed before the subscribe: %w", head, target, rctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// committedTarget returns the position of the last event committed now:
// of player's stream (read directly, not through the horizon), or of the
// whole log for all players ("").
func (h *Hub) committedTarget(ctx context.Context, player domain.PlayerID) (eventstore.Position, error) {
	if player == "" {
		p, err := h.committed.CommittedHead(ctx)
		if err != nil {
			return eventstore.Position{}, fmt.Errorf("read the committed head: %w", err)
		}
		return p, nil
	}
	v, err := h.cfg.Store.StreamVersion(ctx, player.Stream())
	if err != nil || v == 0 {
		return eventstore.Position{}, err
	}
	evs, err := h.cfg.Store.ReadStream(ctx, player.Stream(), v, 1)
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("read the last event of %s: %w", player.Stream(), err)
	}
	if len(evs) == 0 {
		return eventstore.Position{}, nil
	}
	return evs[0].Position, nil
}

// foldInto applies e to the catch-up's queue of p, loading it at the
// version before e first.
func (h *Hub) foldInto(ctx context.Context, queues map[domain.PlayerID]*domain.Queue, p domain.PlayerID, e eventstore.RecordedEvent) (*domain.Queue, error) {
	q := queues[p]
	if q == nil || q.Version() != e.Version-1 {
		rctx, cancel := context.WithTimeout(ctx, h.cfg.ReadTimeout)
		var err error
		q, err = h.views.at(rctx, p, e.Version-1)
		cancel()
		if err != nil {
			delete(queues, p)
			return nil, err
		}
		queues[p] = q
	}
	if err := apply(q, e); err != nil {
		delete(queues, p)
		return nil, err
	}
	return q, nil
}

// reset sends a snapshot of the player's queue with a position to resume
// from: every event of the queue at or below it is in the snapshot, every
// later one comes live. For all players it sends the position only.
func (h *Hub) reset(ctx context.Context, conn *websocket.Conn, player domain.PlayerID, head eventstore.Position) (eventstore.Position, error) {
	if player == "" {
		return head, h.write(ctx, conn, resetMessage("", head, nil))
	}
	rctx, cancel := context.WithTimeout(ctx, h.cfg.ReadTimeout)
	q, at, err := h.views.latest(rctx, player)
	cancel()
	if err != nil {
		return eventstore.Position{}, err
	}
	pos := head
	if pos.Less(at) {
		pos = at
	}
	h.awaitWatermark(ctx, pos)
	queue, err := queueJSON(q.View(), h.cfg.Now())
	if err != nil {
		return eventstore.Position{}, err
	}
	return pos, h.write(ctx, conn, resetMessage(player, pos, queue))
}

package realtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults"
)

// Config configures a Hub. Zero durations and sizes mean their defaults.
type Config struct {
	// Store is the event log: the source of everything sent. Required.
	Store eventstore.Store
	// Tokens verifies bearer tokens (auth.Verifiers). Required.
	Tokens TokenVerifier
	// Rules fold the queue views (the same catalog and queue limit as the
	// command side, so views equal GET /api/queue's).
	Rules domain.Rules
	// Sessions, when set, refuses tokens of revoked sessions.
	Sessions SessionChecker
	// Presence, when set, is told when players come online and go offline.
	Presence Presence
	// Waker, when set, carries wake-ups between instances (Redis pub/sub).
	Waker Waker
	// Changes, when set, hears of every queue change (see ChangeSink); the
	// hub then folds every queue, watched or not.
	Changes ChangeSink
	// Watermark, when set, delays live delivery until the queue read model
	// has applied each batch (at most MaxWatermarkWait).
	Watermark Watermark
	// OriginPatterns are the origins allowed to open a socket from a
	// browser besides the server's own host: "https://game.example",
	// "game.example" or "*.example" (coder/websocket's AcceptOptions).
	// "*" allows any origin.
	OriginPatterns []string
	// SendBuffer is how many messages may wait for a slow client before it
	// is disconnected with CloseSlowConsumer. Default 256.
	SendBuffer int
	// WriteTimeout bounds every write to a client (messages, pings, the
	// close frame). Default 10 s.
	WriteTimeout time.Duration
	// PingInterval is how often an idle connection is pinged; a missing
	// pong within WriteTimeout closes it. Default 30 s.
	PingInterval time.Duration
	// AuthTimeout bounds the wait for the auth and subscribe messages.
	// Default 10 s.
	AuthTimeout time.Duration
	// ReadTimeout bounds each read of the store that a subscribe makes
	// (the catch-up, the reset's snapshot): a store that cannot be reached
	// closes the socket with CloseTryAgainLater within it, rather than when
	// the store comes back. Default 5 s.
	ReadTimeout time.Duration
	// MaxResumeEvents is how many missed events a resume replays; a client
	// further behind gets a reset. Default 1,000.
	MaxResumeEvents int
	// MaxResumeDistance bounds, in log sequence numbers (events on SQLite
	// and PostgreSQL), how far back a resume may scan; a client further
	// behind gets a reset without a scan. Default 1,000,000; negative: no
	// bound.
	MaxResumeDistance int64
	// MaxWatermarkWait bounds the wait for the read model per batch; past
	// it the batch is delivered anyway and a warning logged. Default 2 s.
	MaxWatermarkWait time.Duration
	// OfflineGrace is how long a player's last connection must stay closed
	// before Presence hears PlayerOffline. Default 30 s.
	OfflineGrace time.Duration
	// ViewCacheSize bounds the queues kept folded in memory. Default 10,000.
	ViewCacheSize int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock of serverTime and presence; default time.Now.
	Now func() time.Time
	// Observer hears of the outages of the hub's event log (component
	// "realtime hub"). May be nil.
	Observer faults.Observer
}

func (c *Config) setDefaults() {
	if c.SendBuffer <= 0 {
		c.SendBuffer = 256
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 5 * time.Second
	}
	if c.MaxResumeEvents <= 0 {
		c.MaxResumeEvents = 1000
	}
	if c.MaxResumeDistance == 0 {
		c.MaxResumeDistance = 1_000_000
	}
	if c.MaxWatermarkWait <= 0 {
		c.MaxWatermarkWait = 2 * time.Second
	}
	if c.OfflineGrace <= 0 {
		c.OfflineGrace = 30 * time.Second
	}
	if c.ViewCacheSize <= 0 {
		c.ViewCacheSize = 10_000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("realtime config: Store is required"))
	}
	if c.Tokens == nil {
		errs = append(errs, errors.New("realtime config: Tokens is required"))
	}
	if err := c.Rules.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("realtime config: %w", err))
	}
	if c.SendBuffer > 1<<16 {
		errs = append(errs, fmt.Errorf("realtime config: SendBuffer %d is over 65536", c.SendBuffer))
	}
	return errors.Join(errs...)
}

// Stats are the hub's counters.
type Stats struct {
	// Connections is the number of subscribed connections now.
	Connections int64
	// Delivered counts messages handed to connections' buffers.
	Delivered int64
	// SlowDisconnects counts connections cut off with CloseSlowConsumer.
	SlowDisconnects int64
	// Position is the last position the hub dispatched.
	Position eventstore.Position
	// LocalDelivered counts events delivered from this instance's own
	// appends (LocalAppends), ahead of the log.
	LocalDelivered int64
}

// Hub follows the event log with ONE subscription per process and fans every
// queue event out to the connections subscribed to that queue (and to the
// admins watching all). It serves the sockets of GET /api/ws (Serve, which
// web calls). Safe for concurrent use.
type Hub struct {
	cfg Config
	log *slog.Logger
	// committed is the store's CommittedHead, nil when its Head is its
	// committed head (see readableHead).
	committed CommittedHeader
	views     *views
	outage    *faults.Outage // of its subscription to the log

	mu      sync.Mutex
	started bool
	closed  bool
	pos     eventstore.Position // last position dispatched
	// A player's subscribers and a session's are short slices (one
	// socket each, most of the time): a map per player would cost more
	// than the socket itself.
	players  map[domain.PlayerID][]*subscriber
	all      map[*subscriber]struct{}
	sessions map[string][]*subscriber
	online   map[domain.PlayerID]*presenceState
	presence presenceCalls // see presence.go

	cancel context.CancelFunc
	wg     sync.WaitGroup

	// dmu is the dispatch lock: held while events are folded and handed
	// to subscribers, by the log's dispatcher (not while it waits for the
	// read model) and by local deliveries (local.go), so they take turns.
	// It guards the views' folding and localMsgs and localPos: what was
	// delivered from this instance's appends that the log has not brought
	// yet, by position (the log's copy goes to the admins only), and each
	// player's last such position. Lock order: dmu before mu.
	dmu            sync.Mutex
	localMsgs      map[eventstore.Position]*outMessage
	localPos       map[domain.PlayerID]eventstore.Position
	localDelivered atomic.Int64

	conns     atomic.Int64
	delivered atomic.Int64
	slow      atomic.Int64
}

// outMessage is one encoded message and the position it carries, shared by
// every subscriber it goes to.
type outMessage struct {
	pos  eventstore.Position
	data []byte
}

// presenceState counts a player's own connections on this instance.
type presenceState struct {
	conns   int
	online  bool                // PlayerOnline was published and PlayerOffline not since
	offline *time.Timer         // pending PlayerOffline
	last    eventstore.Position // the last position sent to the player's sockets
}

// NewHub checks cfg and returns a hub; Start it before serving.
func NewHub(cfg Config) (*Hub, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "realtime")
	return &Hub{
		cfg: cfg, log: log,
		committed: committedHeadOf(cfg.Store),
		outage:    faults.NewOutage(faults.OutageConfig{Component: "realtime hub", Logger: log, Observer: cfg.Observer}),
		views:     newViews(cfg.Store, cfg.Rules, cfg.ViewCacheSize),
		players:   map[domain.PlayerID][]*subscriber{},
		all:       map[*subscriber]struct{}{},
		sessions:  map[string][]*subscriber{},
		online:    map[domain.PlayerID]*presenceState{},
		localMsgs: map[eventstore.Position]*outMessage{},
		localPos:  map[domain.PlayerID]eventstore.Position{},
	}, nil
}

// queueFilter selects the queue streams.
var queueFilter = eventstore.Filter{StreamPrefixes: []string{domain.StreamPrefix}}

// Start subscribes to the log at its head and starts dispatching. It
// returns once the subscription exists, so every connection accepted after
// Start sees every event committed after it subscribed. Close stops it.
func (h *Hub) Start(ctx context.Context) error {
	h.mu.Lock()
	if h.started || h.closed {
		h.mu.Unlock()
		return errors.New("start realtime hub: already started or closed")
	}
	h.mu.Unlock()
	head, err := h.cfg.Store.Head(ctx)
	if err != nil {
		return fmt.Errorf("start realtime hub: read head: %w", err)
	}
	// The subscription lives until Close, whatever ctx (which bounds only
	// Start) does.
	runCtx, cancel := context.WithCancel(context.Background())
	sub, err := h.cfg.Store.Subscribe(runCtx, head, queueFilter)
	if err != nil {
		cancel()
		return fmt.Errorf("start realtime hub: subscribe at %s: %w", head, err)
	}
	h.mu.Lock()
	h.started, h.pos, h.cancel = true, head, cancel
	h.mu.Unlock()
	batches := make(chan []eventstore.RecordedEvent, 16)
	h.wg.Add(2)
	go func() {
		defer h.wg.Done()
		h.follow(runCtx, sub, head, batches)
	}()
	go func() {
		defer h.wg.Done()
		h.dispatchLoop(runCtx, batches)
	}()
	return nil
}

// Close stops the hub and closes every connection with CloseGoingAway.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	cancel := h.cancel
	var subs []*subscriber
	for s := range h.all {
		subs = append(subs, s)
	}
	for _, set := range h.players {
		subs = append(subs, set...)
	}
	for _, p := range h.online {
		if p.offline != nil {
			p.offline.Stop()
		}
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.kick(CloseGoingAway, "server shutting down", nil)
	}
	if cancel != nil {
		cancel()
	}
	h.wg.Wait()
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	pos := h.pos
	h.mu.Unlock()
	return Stats{Connections: h.conns.Load(), Delivered: h.delivered.Load(), SlowDisconnects: h.slow.Load(), Position: pos,
		LocalDelivered: h.localDelivered.Load()}
}

// follow reads the subscription into batches, resubscribing from the last
// position it got after an error, forever: the log's outages (the database
// away) are logged once when they start and once when they end, paced by
// the outage's backoff, and told to the Observer; clients see nothing but
// a pause, then every event they missed, in order.
func (h *Hub) follow(ctx context.Context, sub eventstore.Subscription, from eventstore.Position, batches chan<- []eventstore.RecordedEvent) {
	defer close(batches)
	for {
		evs, err := sub.Next(ctx)
		if err == nil {
			h.outage.Recovered()
			from = evs[len(evs)-1].Position
			select {
			case batches <- evs:
			case <-ctx.Done():
				sub.Close()
				return
			}
			continue
		}
		sub.Close()
		if ctx.Err() != nil {
			return
		}
		for {
			if !h.pause(ctx, from, err) {
				return
			}
			// Is the log back? (A subscription says so only with its
			// next event.)
			hctx, cancel := context.WithTimeout(ctx, headTimeout)
			_, err = h.cfg.Store.Head(hctx)
			cancel()
			if err != nil {
				continue
			}
			if sub, err = h.cfg.Store.Subscribe(ctx, from, queueFilter); err == nil {
				h.outage.Recovered()
				break
			}
		}
	}
}

// headTimeout bounds the probe of the log after an outage.
const headTimeout = 5 * time.Second

// pause waits before the hub subscribes again after err: a transient
// error counts toward the outage and waits its backoff; anything else is
// logged and waits a second. It reports whether ctx is still alive.
func (h *Hub) pause(ctx context.Context, from eventstore.Position, err error) bool {
	if faults.Transient(err) {
		return h.outage.Wait(ctx, err)
	}
	h.log.Error("event store subscription failed; resubscribing", "from", from.String(), "err", err)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Second):
		return true
	}
}

// dispatchLoop dispatches the subscription's batches and, on wake-ups from
// other instances, reads the log itself (whichever source is first wins;
// the other's events are at or below the hub's position and dropped).
func (h *Hub) dispatchLoop(ctx context.Context, batches <-chan []eventstore.RecordedEvent) {
	var wakeups <-chan eventstore.Position
	if h.cfg.Waker != nil {
		wakeups = h.cfg.Waker.Wakeups()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case evs, ok := <-batches:
			if !ok {
				return
			}
			h.dispatch(ctx, evs)
			if h.cfg.Waker != nil {
				h.cfg.Waker.Announce(evs[len(evs)-1].Position)
			}
		case pos := <-wakeups:
			h.mu.Lock()
			behind := pos.IsZero() || h.pos.Less(pos)
			h.mu.Unlock()
			if behind {
				h.readAhead(ctx)
			}
		}
	}
}

// readAhead reads the log after the hub's position and dispatches it.
func (h *Hub) readAhead(ctx context.Context) {
	for {
		h.mu.Lock()
		from := h.pos
		h.mu.Unlock()
		evs, err := h.cfg.Store.ReadAll(ctx, from, queueFilter, 1000)
		if err != nil {
			switch {
			case ctx.Err() != nil:
			case faults.Transient(err):
				h.outage.Failed(err) // the subscription retries; this only counts
			default:
				h.log.Warn("read the log after a wake-up", "from", from.String(), "err", err)
			}
			return
		}
		if len(evs) == 0 {
			return
		}
		h.dispatch(ctx, evs)
	}
}

// dispatch fans out the events after the hub's position, in log order.
func (h *Hub) dispatch(ctx context.Context, evs []eventstore.RecordedEvent) {
	h.mu.Lock()
	from := h.pos
	h.mu.Unlock()
	i := 0
	for i < len(evs) && !from.Less(evs[i].Position) {
		i++
	}
	evs = evs[i:]
	if len(evs) == 0 {
		return
	}
	last := evs[len(evs)-1].Position
	if h.waitsForReadModel(evs) {
		h.awaitWatermark(ctx, last)
	}
	now := h.cfg.Now()
	var changed map[domain.PlayerID]domain.QueueView
	if h.cfg.Changes != nil {
		changed = map[domain.PlayerID]domain.QueueView{}
		defer func() { // after the dispatch lock is released
			for _, v := range changed {
				h.cfg.Changes.QueueChanged(ctx, v)
			}
		}()
	}
	h.dmu.Lock()
	defer h.dmu.Unlock()
	for i, e := range evs {
		player, ok := domain.PlayerFromStream(e.Stream)
		if !ok {
			h.setPos(e.Position)
			continue
		}
		if m, ok := h.localMsgs[e.Position]; ok {
			// Delivered to the players from this instance's append: the
			// admins get it now, in log order.
			delete(h.localMsgs, e.Position)
			if h.localPos[player] == e.Position {
				delete(h.localPos, player)
			}
			h.deliverTo(player, m, false, true)
			continue
		}
		interested := h.interested(player)
		if !interested && changed == nil {
			h.setPos(e.Position)
			continue
		}
		var queue []byte
		view, err := h.views.advance(ctx, player, e)
		if err == nil && changed != nil {
			changed[player] = view
		}
		if !interested {
			h.setPos(e.Position)
			continue
		}
		if err == nil && endsCommand(evs, i) {
			queue, err = queueJSON(view, now)
		}
		if err != nil {
			h.log.Warn("fold the queue view; sending the event without it", "player", player, "version", e.Version, "err", err)
		}
		data, err := eventMessage(player, e, queue)
		if err != nil {
			h.log.Error("encode a message", "err", err)
			h.setPos(e.Position)
			continue
		}
		h.deliverTo(player, &outMessage{pos: e.Position, data: data}, true, true)
	}
}

// waitsForReadModel reports whether the log's batch evs holds a message
// for someone: not when every event of it was delivered locally (or is
// watched by nobody) and no admin watches, since those messages were sent
// before the read model (LocalAppends) and waiting would only hold back
// the next local delivery.
func (h *Hub) waitsForReadModel(evs []eventstore.RecordedEvent) bool {
	h.dmu.Lock()
	defer h.dmu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.all) > 0 {
		return true
	}
	for _, e := range evs {
		if _, ok := h.localMsgs[e.Position]; ok {
			continue
		}
		if p, ok := domain.PlayerFromStream(e.Stream); ok && len(h.players[p]) > 0 {
			return true
		}
	}
	return false
}

func (h *Hub) setPos(p eventstore.Position) {
	h.mu.Lock()
	if h.pos.Less(p) {
		h.pos = p
	}
	h.mu.Unlock()
}

func (h *Hub) interested(player domain.PlayerID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.players[player]) > 0 || len(h.all) > 0
}

// deliverTo hands m to every subscriber of player (players) and of all
// players (admins). A message of the log moves the hub's position to m's
// under the same lock, so a subscriber registering concurrently either
// gets m here or finds it in the log; a local one (players only, see
// LocalAppends) is recorded in localMsgs under the lock too: the log's
// copy then goes to the admins alone. A full buffer never blocks: that
// subscriber is cut off.
func (h *Hub) deliverTo(player domain.PlayerID, m *outMessage, players, admins bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if admins && h.pos.Less(m.pos) {
		h.pos = m.pos
	}
	if !admins {
		h.localMsgs[m.pos] = m
	}
	offer := func(s *subscriber) {
		if s.offer(m) {
			h.delivered.Add(1)
			return
		}
		if s.kick(CloseSlowConsumer, fmt.Sprintf("too slow: %d messages waited", h.cfg.SendBuffer), nil) {
			h.slow.Add(1)
			h.log.Info("slow websocket client cut off", "player", s.principal.PlayerID, "watching", s.player)
		}
	}
	if players {
		for _, s := range h.players[player] {
			offer(s)
		}
	}
	if admins {
		for s := range h.all {
			offer(s)
		}
	}
}

// awaitWatermark waits, at most MaxWatermarkWait, until the read model has
// applied pos.
func (h *Hub) awaitWatermark(ctx context.Context, pos eventstore.Position) {
	if h.cfg.Watermark == nil {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, h.cfg.MaxWatermarkWait)
	defer cancel()
	if err := h.cfg.Watermark.WaitFor(wctx, pos); err != nil && ctx.Err() == nil {
		h.log.Warn("the queue read model did not reach the position in time; delivering anyway",
			"position", pos.String(), "waited", h.cfg.MaxWatermarkWait, "err", err)
	}
}

// register adds a subscriber on conn for player ("" for all). Live
// messages reach its queue from now on; they are written once the catch-up
// is over (subscriber.goLive).
func (h *Hub) register(p auth.Principal, player domain.PlayerID, conn *websocket.Conn) (*subscriber, error) {
	s := &subscriber{hub: h, conn: conn, principal: p, player: player}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || !h.started {
		return nil, errors.New("realtime hub is not running")
	}
	if player == "" {
		h.all[s] = struct{}{}
	} else {
		h.players[player] = append(h.players[player], s)
	}
	if p.SessionID != "" {
		h.sessions[p.SessionID] = append(h.sessions[p.SessionID], s)
	}
	h.conns.Add(1)
	if p.Role == auth.RolePlayer && player == domain.PlayerID(p.PlayerID) {
		h.connectedLocked(player)
	}
	return s, nil
}

// unregister removes s.
func (h *Hub) unregister(s *subscriber) {
	last := s.lastSent()
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.player == "" {
		delete(h.all, s)
	} else if set := without(h.players[s.player], s); len(set) == 0 {
		delete(h.players, s.player)
	} else {
		h.players[s.player] = set
	}
	if sid := s.principal.SessionID; sid != "" {
		if set := without(h.sessions[sid], s); len(set) == 0 {
			delete(h.sessions, sid)
		} else {
			h.sessions[sid] = set
		}
	}
	h.conns.Add(-1)
	if s.principal.Role == auth.RolePlayer && s.player == domain.PlayerID(s.principal.PlayerID) {
		h.disconnectedLocked(s.player, last)
	}
}

// without returns set less s (in place).
func without(set []*subscriber, s *subscriber) []*subscriber {
	for i, x := range set {
		if x == s {
			set[i] = set[len(set)-1]
			set[len(set)-1] = nil
			return set[:len(set)-1]
		}
	}
	return set
}

// RevokeSession closes, with CloseUnauthorized, every connection
// authenticated by a token of session sid. The session store calls it when
// a session is revoked (on every instance).
func (h *Hub) RevokeSession(sid string) {
	h.mu.Lock()
	subs := append([]*subscriber(nil), h.sessions[sid]...)
	h.mu.Unlock()
	for _, s := range subs {
		s.kick(CloseUnauthorized, "session revoked", nil)
	}
}

// ForgetPlayer closes, with CloseUnauthorized and ReasonPlayerForgotten,
// every connection of this instance that watches player's queue, and drops
// the player's cached view: nothing of a forgotten player is sent again
// (the log no longer hands out the player's events). Sockets on other
// instances close through their sessions' revocation. The player is not
// announced offline (Presence) when those sockets close.
func (h *Hub) ForgetPlayer(player domain.PlayerID) {
	h.mu.Lock()
	subs := append([]*subscriber(nil), h.players[player]...)
	if p := h.online[player]; p != nil {
		// No player.offline after player.forgotten: the sockets closing
		// now leave without a word (a new sign-in starts a new presence).
		p.online = false
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.kick(CloseUnauthorized, ReasonPlayerForgotten, nil)
	}
	h.views.forget(player)
}

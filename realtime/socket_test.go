package realtime_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/realtime"
	"github.com/taskqueue/taskqueue/web/auth"
)

// Each player receives only the events of their own queue; an admin
// watching all receives both; a player may not watch another's queue nor
// all of them.
func TestPlayersReceiveOnlyTheirOwnQueue(t *testing.T) {
	teststore.EachStore(t, func(t *testing.T, store eventstore.Store) {
		h := newHandlers(t, store)
		// The clients read only after the workload: their buffers hold it all.
		s := startHub(t, realtime.Config{Store: store, SendBuffer: 1 << 14})
		clients := map[string]*client{}
		for _, p := range []string{"alice", "bob"} {
			c := mustDial(t, s, token(t, s.tokens, p, auth.RolePlayer))
			c.subscribe(p, "")
			if m := c.mustRead(); m.Type != realtime.TypeReset || m.PlayerID != p {
				t.Fatalf("%s: first message %+v, want a reset of its queue", p, m)
			}
			c.mustRead() // subscribed
			clients[p] = c
		}
		admin := mustDial(t, s, token(t, s.tokens, "root", auth.RoleAdmin))
		admin.subscribe(realtime.AllPlayers, "")
		if m := admin.mustRead(); m.Type != realtime.TypeReset || m.Queue != nil {
			t.Fatalf("admin: first message %+v, want a reset without a queue", m)
		}
		admin.mustRead() // subscribed

		workload(context.Background(), t, h, []string{"alice", "bob"}, 120, 3)
		total, inside := 0, 0
		for _, p := range []string{"alice", "bob"} {
			evs, err := store.ReadStream(context.Background(), domain.PlayerID(p).Stream(), 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			total += len(evs)
			for i, e := range evs {
				m := clients[p].mustRead()
				if m.Type != realtime.TypeEvent || m.PlayerID != p || m.Event.Version != e.Version {
					t.Fatalf("%s: got %s of %s v%d, want event v%d of its own queue", p, m.Type, m.PlayerID, eventVersion(m), e.Version)
				}
				// Only a command's last event carries the queue, at its version:
				// a client renders no state between a command's events.
				last := i+1 == len(evs) || evs[i+1].Metadata.CausationID != e.Metadata.CausationID
				switch {
				case last && m.Queue == nil:
					t.Fatalf("%s: v%d (%s) ends its command but carries no queue", p, e.Version, e.Type)
				case last && m.queueVersion(t) != e.Version:
					t.Fatalf("%s: v%d carries the queue at v%d", p, e.Version, m.queueVersion(t))
				case !last && m.Queue != nil:
					t.Fatalf("%s: v%d (%s) is inside its command but carries a queue", p, e.Version, e.Type)
				case !last:
					inside++
				}
			}
		}
		if inside == 0 {
			t.Fatal("the workload had no command of several events; the check above checked nothing")
		}
		seen := map[string]int64{}
		for i := 0; i < total; i++ {
			m := admin.mustRead()
			if m.Type != realtime.TypeEvent || m.Event.Version != seen[m.PlayerID]+1 {
				t.Fatalf("admin: got %s of %s v%d after v%d", m.Type, m.PlayerID, eventVersion(m), seen[m.PlayerID])
			}
			seen[m.PlayerID] = m.Event.Version
		}
		// Nothing of bob's was queued behind alice's last event: a fresh
		// event of alice's comes next on her socket.
		req := command.Request{PlayerID: "alice", Actor: "alice"}
		res, err := h.StopQueue.Handle(context.Background(), command.StopQueue{Request: req})
		if err == nil && len(res.Events) == 0 { // it was stopped already
			res, err = h.StartQueue.Handle(context.Background(), command.StartQueue{Request: req})
		}
		if err != nil {
			t.Fatal(err)
		}
		if m := clients["alice"].mustRead(); m.PlayerID != "alice" || m.Event.Version != streamVersion(t, store, "alice")-int64(len(res.Events))+1 {
			t.Fatalf("alice: got %+v after the workload, want her next event", m)
		}

		refused := []struct {
			who, role, watch string
			code             websocket.StatusCode
		}{
			{"bob", "player", "alice", realtime.CloseForbidden},
			{"bob", "player", realtime.AllPlayers, realtime.CloseForbidden},
			{"bob", "player", "not a player", realtime.CloseBadRequest},
		}
		for _, r := range refused {
			c := mustDial(t, s, token(t, s.tokens, r.who, auth.Role(r.role)))
			c.subscribe(r.watch, "")
			m := c.mustRead()
			if m.Type != realtime.TypeError || m.Problem == nil {
				t.Fatalf("%s watching %q: got %+v, want an error", r.who, r.watch, m)
			}
			if got := c.closeStatus(); got != r.code {
				t.Errorf("%s watching %q: closed with %d, want %d", r.who, r.watch, got, r.code)
			}
		}
	})
}

func eventVersion(m message) int64 {
	if m.Event == nil {
		return 0
	}
	return m.Event.Version
}

// The token comes in the Authorization header, in ?access_token= or in a
// first "auth" message, and is checked before anything else flows; origins
// other than the configured ones are refused.
func TestAuthenticationAndOrigin(t *testing.T) {
	store := openSQLite(t)
	s := startHub(t, realtime.Config{Store: store, AuthTimeout: 300 * time.Millisecond, OriginPatterns: []string{"https://game.example"}})
	tok := token(t, s.tokens, "alice", auth.RolePlayer)

	t.Run("header", func(t *testing.T) {
		c, _, err := dial(t, s, "", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.conn.CloseNow()
		c.subscribe("alice", "")
		if m := c.mustRead(); m.Type != realtime.TypeReset {
			t.Fatalf("got %+v, want a reset", m)
		}
	})
	t.Run("first message", func(t *testing.T) {
		c := mustDial(t, s, "")
		c.send(map[string]string{"type": "auth", "token": tok})
		c.subscribe("alice", "")
		if m := c.mustRead(); m.Type != realtime.TypeReset {
			t.Fatalf("got %+v, want a reset", m)
		}
	})
	t.Run("bad first message", func(t *testing.T) {
		c := mustDial(t, s, "")
		c.send(map[string]string{"type": "auth", "token": tok + "x"})
		if m := c.mustRead(); m.Type != realtime.TypeError || m.Problem.Status != 401 {
			t.Fatalf("got %+v, want a 401 error", m)
		}
		if got := c.closeStatus(); got != realtime.CloseUnauthorized {
			t.Fatalf("closed with %d, want %d", got, realtime.CloseUnauthorized)
		}
	})
	t.Run("subscribe without auth", func(t *testing.T) {
		c := mustDial(t, s, "")
		c.subscribe("alice", "")
		if m := c.mustRead(); m.Type != realtime.TypeError || m.Problem.Status != 401 {
			t.Fatalf("got %+v, want a 401 error", m)
		}
		if got := c.closeStatus(); got != realtime.CloseUnauthorized {
			t.Fatalf("closed with %d, want %d", got, realtime.CloseUnauthorized)
		}
	})
	t.Run("silence", func(t *testing.T) {
		c := mustDial(t, s, "")
		if got := c.closeStatus(); got != realtime.CloseUnauthorized {
			t.Fatalf("closed with %d, want %d", got, realtime.CloseUnauthorized)
		}
	})
	t.Run("bad token in the query", func(t *testing.T) {
		_, resp, err := dial(t, s, tok[:len(tok)-2], nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("got %v, %v; want a 401 before the upgrade", resp, err)
		}
	})
	t.Run("foreign origin", func(t *testing.T) {
		_, resp, err := dial(t, s, tok, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("got %v, %v; want a 403", resp, err)
		}
	})
	t.Run("allowed origin", func(t *testing.T) {
		c, _, err := dial(t, s, tok, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://game.example"}}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.conn.CloseNow()
		c.subscribe("alice", "")
		if m := c.mustRead(); m.Type != realtime.TypeReset {
			t.Fatalf("got %+v, want a reset", m)
		}
	})
}

// sessions is an in-memory SessionChecker: the set of revoked sessions.
type sessions struct {
	mu      sync.Mutex
	revoked map[string]bool
}

func (s *sessions) Active(_ context.Context, sid string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.revoked[sid], nil
}

func sessionToken(t *testing.T, player, sid string) string {
	t.Helper()
	now := time.Now()
	c := auth.Claims{RegisteredClaims: jwt.RegisteredClaims{
		Subject: player, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}, Role: auth.RolePlayer, SessionID: sid}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A revoked session closes its open sockets at once and its token opens no
// new one.
func TestRevokedSessionStopsAtOnce(t *testing.T) {
	store := openSQLite(t)
	sess := &sessions{revoked: map[string]bool{}}
	s := startHub(t, realtime.Config{Store: store, Sessions: sess})
	tok := sessionToken(t, "alice", "s-1")
	other := mustDial(t, s, sessionToken(t, "alice", "s-2"))
	other.subscribe("alice", "")
	other.mustRead()
	c := mustDial(t, s, tok)
	c.subscribe("alice", "")
	c.mustRead()
	c.mustRead() // subscribed

	sess.mu.Lock()
	sess.revoked["s-1"] = true
	sess.mu.Unlock()
	s.hub.RevokeSession("s-1")
	if got := c.closeStatus(); got != realtime.CloseUnauthorized {
		t.Fatalf("closed with %d, want %d", got, realtime.CloseUnauthorized)
	}
	if _, resp, err := dial(t, s, tok, nil); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a revoked session's token opened a socket: %v", err)
	}
	h := newHandlers(t, store)
	if _, err := h.StopQueue.Handle(context.Background(), command.StopQueue{Request: command.Request{PlayerID: "alice", Actor: "alice"}}); err != nil {
		t.Fatal(err)
	}
	for {
		if m := other.mustRead(); m.Type == realtime.TypeEvent {
			break // the other session kept its socket
		}
	}
}

// smallBuffers makes the kernel keep little of what is unread, so that a
// client that stops reading fills the server's buffer quickly.
func smallBuffers(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
		_ = tc.SetReadBuffer(4096)
	}
}

type smallListener struct{ net.Listener }

func (l smallListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		smallBuffers(c)
	}
	return c, err
}

// A client that stops reading is cut off when its buffer fills, while a
// client of the same queue keeps receiving every event in order.
func TestSlowReaderIsCutOffWithoutSlowingOthers(t *testing.T) {
	store := openSQLite(t)
	h := newHandlers(t, store)
	hub, err := realtime.NewHub(realtime.Config{Store: store, Tokens: newTokens(t), SendBuffer: 8, WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(hub)
	srv.Listener = smallListener{srv.Listener}
	srv.Start()
	t.Cleanup(func() { hub.Close(); srv.Close() })
	s := &server{hub: hub, srv: srv, tokens: newTokens(t)}
	tok := token(t, s.tokens, "alice", auth.RolePlayer)

	smallDial := &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				smallBuffers(c)
			}
			return c, err
		},
	}}}
	slow, _, err := dial(t, s, tok, smallDial)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.conn.CloseNow()
	slow.subscribe("alice", "")
	fast := mustDial(t, s, tok)
	fast.subscribe("alice", "")
	fast.mustRead() // reset
	fast.mustRead() // subscribed

	var got atomic.Int64
	readErr := make(chan error, 1)
	go func() {
		for {
			m, err := fast.read(90 * time.Second)
			if err != nil {
				readErr <- err
				return
			}
			if m.Type != realtime.TypeEvent || m.Event.Version != got.Load()+1 {
				readErr <- nil
				return
			}
			got.Add(1)
		}
	}()
	// Each command waits for the fast client to have its events, so the
	// fast client is never more than one command behind.
	for i := 0; hub.Stats().SlowDisconnects == 0 || i < 50; i++ {
		if i > 2000 {
			t.Fatalf("the slow client was never cut off")
		}
		req := command.Request{PlayerID: "alice", Actor: "alice"}
		if i%2 == 0 {
			_, err = h.StopQueue.Handle(context.Background(), command.StopQueue{Request: req})
		} else {
			_, err = h.StartQueue.Handle(context.Background(), command.StartQueue{Request: req})
		}
		if i == 0 {
			_, err = h.EnqueueTask.Handle(context.Background(), command.EnqueueTask{Request: req, Type: "chop-wood", Count: 1000})
		}
		if err != nil {
			t.Fatal(err)
		}
		want := streamVersion(t, store, "alice")
		testenv.WaitFor(t, "the fast client to keep up", func() bool {
			select {
			case err := <-readErr:
				t.Fatalf("fast client: %v after %d events", err, got.Load())
			default:
			}
			return got.Load() == want
		})
	}
	if n := hub.Stats().SlowDisconnects; n != 1 {
		t.Errorf("%d slow disconnects, want 1 (the slow client only)", n)
	}
	// The slow client reads what reached its socket, then finds it closed.
	events := 0
	for {
		m, err := slow.read(90 * time.Second)
		if err != nil {
			if code := websocket.CloseStatus(err); code != realtime.CloseSlowConsumer && code != -1 {
				t.Errorf("slow client closed with %d, want %d or an abrupt end", code, realtime.CloseSlowConsumer)
			}
			break
		}
		if m.Type == realtime.TypeEvent {
			events++
		}
	}
	if int64(events) >= got.Load() {
		t.Errorf("the slow client read %d events of %d", events, got.Load())
	}
	t.Logf("fast client: %d events; slow client: %d before the cut", got.Load(), events)
}

// presenceLog records presence calls.
type presenceLog struct {
	mu    sync.Mutex
	calls []string
}

func (p *presenceLog) PlayerOnline(_ context.Context, player domain.PlayerID, _ time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, "online:"+string(player))
	return nil
}

func (p *presenceLog) PlayerOffline(_ context.Context, player domain.PlayerID, _ time.Time, last eventstore.Position) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, "offline:"+string(player)+"@"+last.String())
	return nil
}

func (p *presenceLog) snapshot() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

// A player is online from their first socket and offline once the last one
// closed and the grace period passed; an admin's socket does not count.
func TestPresenceFollowsThePlayersLastConnection(t *testing.T) {
	store := openSQLite(t)
	pl := &presenceLog{}
	s := startHub(t, realtime.Config{Store: store, Presence: pl, OfflineGrace: 20 * time.Millisecond})
	tok := token(t, s.tokens, "alice", auth.RolePlayer)
	a := mustDial(t, s, tok)
	a.subscribe("alice", "")
	a.mustRead()
	b := mustDial(t, s, tok)
	b.subscribe("alice", "")
	b.mustRead()
	b.mustRead() // subscribed
	h := newHandlers(t, store)
	res, err := h.StopQueue.Handle(context.Background(), command.StopQueue{Request: command.Request{PlayerID: "alice", Actor: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if m := b.mustRead(); m.Type != realtime.TypeEvent {
		t.Fatalf("got %+v, want the QueueStopped event", m)
	}
	admin := mustDial(t, s, token(t, s.tokens, "root", auth.RoleAdmin))
	admin.subscribe("alice", "")
	admin.mustRead()
	testenv.WaitFor(t, "online", func() bool { return len(pl.snapshot()) == 1 })

	a.conn.Close(websocket.StatusNormalClosure, "")
	testenv.WaitFor(t, "the first socket to be gone", func() bool { return s.hub.Stats().Connections == 2 })
	b.conn.Close(websocket.StatusNormalClosure, "")
	testenv.WaitFor(t, "offline", func() bool { return len(pl.snapshot()) == 2 })
	if got := pl.snapshot(); got[0] != "online:alice" || got[1] != "offline:alice@"+res.Position.String() {
		t.Fatalf("presence calls %v", got)
	}
}

// TestIdleSocketsHoldOneGoroutineEach checks the shape of an idle socket
// that its memory depends on (docs/REALTIME.md, "What a socket costs"): once
// subscribed, and again after a burst of live messages, each socket keeps
// one goroutine on the server (coder/websocket's reader of control frames);
// the HTTP handler has returned and no writer waits.
func TestIdleSocketsHoldOneGoroutineEach(t *testing.T) {
	store := openSQLite(t)
	h := newHandlers(t, store)
	s := startHub(t, realtime.Config{Store: store})
	settle := func() int {
		// Goroutines that are ending (handlers returning, writers whose
		// queue is empty) get a moment.
		n := runtime.NumGoroutine()
		for range 50 {
			time.Sleep(20 * time.Millisecond)
			if m := runtime.NumGoroutine(); m == n {
				return n
			} else {
				n = m
			}
		}
		return n
	}
	before := settle()
	const sockets = 40
	var clients []*client
	for i := range sockets {
		p := fmt.Sprintf("idle%d", i)
		c := mustDial(t, s, token(t, s.tokens, p, auth.RolePlayer))
		c.subscribe(p, "")
		c.mustRead() // reset
		c.mustRead() // subscribed
		clients = append(clients, c)
	}
	check := func(when string) {
		t.Helper()
		// The clients' side holds no goroutine while it does not read.
		if got := settle() - before; got > sockets+sockets/4 {
			t.Fatalf("%s: %d sockets hold %d goroutines, want about one each", when, sockets, got)
		}
	}
	check("idle after subscribing")
	for i, c := range clients {
		p := fmt.Sprintf("idle%d", i)
		if _, err := h.StopQueue.Handle(context.Background(), command.StopQueue{Request: command.Request{PlayerID: p, Actor: "test"}}); err != nil {
			t.Fatal(err)
		}
		if m := c.mustRead(); m.Type != realtime.TypeEvent || m.PlayerID != p {
			t.Fatalf("%s: got %+v, want its event", p, m)
		}
	}
	check("idle after a message each")
}

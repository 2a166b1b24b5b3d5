package realtime

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
)

// subscriber is one subscribed connection. What an idle one holds is the
// point of its shape, since a server holds tens of thousands of them:
//
//   - one goroutine, coder/websocket's reader of control frames (CloseRead),
//     which also ends the subscriber when the connection ends; the HTTP
//     handler returns once the catch-up is written;
//   - no goroutine to write: a burst of live messages starts one (flush),
//     which ends when the queue is empty;
//   - no buffer of messages: queue is nil while idle, and holds at most
//     SendBuffer shared messages;
//   - small read and write buffers (smallBuffers), no compression;
//   - two runtime timers (the ping, the token's expiry), no ticker.
//
// Lock order: Hub.mu before subscriber.mu; nothing takes Hub.mu while
// holding a subscriber's.
type subscriber struct {
	hub       *Hub
	conn      *websocket.Conn
	principal auth.Principal
	player    domain.PlayerID // "" for all players

	mu      sync.Mutex
	queue   []*outMessage       // live messages not yet written
	live    bool                // the catch-up is written: flush may run
	writing bool                // a flush goroutine is running
	closing bool                // kicked or ended: write nothing more
	last    eventstore.Position // the last position written to the socket
	ping    *time.Timer
	expiry  *time.Timer
}

// offer queues m for the socket, starting a flush when the subscriber is
// live and none runs. It reports false when the queue is full (the caller
// cuts the subscriber off). Called by the hub under Hub.mu.
func (s *subscriber) offer(m *outMessage) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return true
	}
	if len(s.queue) >= s.hub.cfg.SendBuffer {
		return false
	}
	s.queue = append(s.queue, m)
	if s.live && !s.writing {
		s.writing = true
		go s.flush()
	}
	return true
}

// goLive ends the catch-up: last is the position the client is at (the
// subscribed message is written); queued and later messages after it are
// written from now on.
func (s *subscriber) goLive(ctx context.Context, last eventstore.Position) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	s.last, s.live = last, true
	s.ping = time.AfterFunc(s.hub.cfg.PingInterval, func() { s.pingNow(ctx) })
	if len(s.queue) > 0 && !s.writing {
		s.writing = true
		go s.flush()
	}
}

// flush writes the queue until it is empty, dropping every message at or
// below the last position written (the catch-up sent it). One runs at a
// time per subscriber.
func (s *subscriber) flush() {
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		if len(batch) == 0 || s.closing {
			s.writing = false
			s.mu.Unlock()
			return
		}
		last := s.last
		s.mu.Unlock()
		for _, m := range batch {
			if !last.Less(m.pos) {
				continue
			}
			if err := s.hub.write(context.Background(), s.conn, m.data); err != nil {
				// coder/websocket has closed the connection: its reader
				// ends the subscriber.
				s.mu.Lock()
				s.writing, s.closing, s.queue = false, true, nil
				s.mu.Unlock()
				return
			}
			last = m.pos
			s.mu.Lock()
			s.last = last
			s.mu.Unlock()
		}
	}
}

// pingNow pings the client and arms the next ping; a pong missing within
// WriteTimeout closes the connection (coder/websocket closes it when the
// context ends).
func (s *subscriber) pingNow(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, s.hub.cfg.WriteTimeout)
	err := s.conn.Ping(pctx)
	cancel()
	if err != nil {
		return
	}
	s.mu.Lock()
	if !s.closing {
		s.ping.Reset(s.hub.cfg.PingInterval)
	}
	s.mu.Unlock()
}

// kick closes the connection with code and reason, after msg when it is
// not nil; the first kick wins and kick reports whether it was this one.
// It never blocks: the close handshake runs in a goroutine of its own.
func (s *subscriber) kick(code websocket.StatusCode, reason string, msg []byte) bool {
	s.mu.Lock()
	first := !s.closing
	s.closing, s.queue = true, nil
	s.mu.Unlock()
	if first {
		go s.hub.closeWith(context.Background(), s.conn, code, msg, reason)
	}
	return first
}

// end stops the subscriber's timers once its connection has ended.
func (s *subscriber) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing, s.queue = true, nil
	if s.ping != nil {
		s.ping.Stop()
	}
	if s.expiry != nil {
		s.expiry.Stop()
	}
}

// lastSent returns the last position written to the socket.
func (s *subscriber) lastSent() eventstore.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Sizes of a socket's buffers. The server reads little (a subscribe, pongs,
// the close frame) and writes whole messages: net/http's 4 KiB reader and
// writer, kept by coder/websocket for the connection's life, were an eighth
// of an idle socket's memory. A message larger than the write buffer goes
// to the kernel directly after its header.
const (
	readBufferSize  = 256
	writeBufferSize = 64
)

// smallBuffers is the ResponseWriter Accept upgrades through: its Hijack
// hands coder/websocket small buffers instead of net/http's, keeping
// whatever the client sent after its handshake.
type smallBuffers struct{ http.ResponseWriter }

func (w smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	n := brw.Reader.Buffered()
	if n == 0 {
		return conn, bufio.NewReadWriter(bufio.NewReaderSize(conn, readBufferSize), bufio.NewWriterSize(conn, writeBufferSize)), nil
	}
	// Accept keeps only what the reader has buffered: buffer the early
	// bytes in the new reader.
	early, _ := brw.Reader.Peek(n)
	r := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn), max(n, readBufferSize))
	if _, err := r.Peek(n); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, bufio.NewReadWriter(r, bufio.NewWriterSize(conn, writeBufferSize)), nil
}

package testenv

import (
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TCPProxy forwards TCP connections from its own loopback address to a
// target (the shared PostgreSQL server, say) until stopped: tests play an
// outage by stopping it (connections cut, new ones refused) and the
// recovery by starting it again on the same address, or a partition by
// Partition (connections held open, nothing forwarded either way until
// Heal), while the shared server itself is never stopped.
type TCPProxy struct {
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	gen    int           // counts Stops: a connection accepted before one is cut
	held   chan struct{} // while partitioned; Heal closes it
}

// StartTCPProxy starts a proxy to target (host:port) on a free loopback
// port and stops it when t ends.
func StartTCPProxy(t testing.TB, target string) *TCPProxy {
	t.Helper()
	p := &TCPProxy{target: target}
	p.Start(t)
	t.Cleanup(p.Stop)
	return p
}

// ProxyPostgres returns a connection string like databaseURL (a postgres://
// URL) that goes through a new proxy, and the proxy.
func ProxyPostgres(t testing.TB, databaseURL string) (string, *TCPProxy) {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatalf("testenv: parse %q: %v", databaseURL, err)
	}
	p := StartTCPProxy(t, u.Host)
	u.Host = p.Addr()
	return u.String(), p
}

// Target is the address the proxy forwards to (host:port).
func (p *TCPProxy) Target() string { return p.target }

// Addr is the proxy's address (host:port).
func (p *TCPProxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Start listens (again, after Stop, on the same address) and forwards.
func (p *TCPProxy) Start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	addr := p.addr
	p.mu.Unlock()
	var ln net.Listener
	var err error
	if addr == "" {
		if ln, err = listenBelowEphemeral(); err != nil {
			t.Fatalf("testenv: proxy listen: %v", err)
		}
		addr = ln.Addr().String()
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if ln != nil {
			break
		}
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // the port may linger briefly after Stop
	}
	if err != nil {
		t.Fatalf("testenv: proxy listen on %s: %v", addr, err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	if p.conns == nil {
		p.conns = map[net.Conn]bool{}
	}
	gen := p.gen
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c, gen)
		}
	}()
}

func (p *TCPProxy) forward(c net.Conn, gen int) {
	p.wait() // a connection made during a partition gets no answer until it heals
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.gen != gen { // stopped while dialing
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, c); done <- struct{}{} }()
	go func() { p.pipe(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// pipe copies src to dst, holding each chunk while the proxy is partitioned.
func (p *TCPProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.wait()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// wait returns when the proxy is not partitioned.
func (p *TCPProxy) wait() {
	p.mu.Lock()
	h := p.held
	p.mu.Unlock()
	if h != nil {
		<-h
	}
}

// Partition holds every connection open and forwards nothing, either way,
// until Heal: what a client sees when packets to the server are dropped
// (its reads and writes hang until its own deadline). New connections are
// accepted and held the same way. What was sent meanwhile arrives after
// Heal, as TCP would deliver it.
func (p *TCPProxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = make(chan struct{})
	}
}

// Heal ends a partition. Healing a proxy that is not partitioned is a no-op.
func (p *TCPProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held != nil {
		close(p.held)
		p.held = nil
	}
}

// Stop closes the listener and every connection (ending a partition): the
// target is gone for whoever connects through the proxy. Stopping a stopped
// proxy is a no-op.
func (p *TCPProxy) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held != nil {
		close(p.held)
		p.held = nil
	}
	p.gen++
	if p.ln != nil {
		p.ln.Close()
	}
	for c := range p.conns {
		c.Close()
	}
}

// listenBelowEphemeral listens on a free loopback port below Linux's
// ephemeral range (32768-60999 by default). A port from that range, once
// the proxy stops listening to play an outage, can be taken as the local
// port of any outgoing connection on the machine (a pool's connection to
// PostgreSQL lives for minutes), and the proxy could not listen on it
// again: "bind: address already in use".
func listenBelowEphemeral() (net.Listener, error) {
	var last error
	for range 200 {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return ln, nil
		}
		last = err
	}
	return nil, last
}

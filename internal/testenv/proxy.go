package testenv

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// TCPProxy forwards TCP connections from its own loopback address to a
// target (the shared PostgreSQL server, say) until stopped: tests play an
// outage by stopping it and the recovery by starting it again on the same
// address, while the shared server itself is never stopped.
type TCPProxy struct {
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	gen    int // counts Stops: a connection accepted before one is cut
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
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; {
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
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// Stop closes the listener and every connection: the target is gone for
// whoever connects through the proxy. Stopping a stopped proxy is a no-op.
func (p *TCPProxy) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	if p.ln != nil {
		p.ln.Close()
	}
	for c := range p.conns {
		c.Close()
	}
}

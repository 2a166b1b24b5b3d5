// Package deploy_test checks what a deployment relies on: /readyz turns
// not-ready when PostgreSQL goes away and ready again when it is back, so
// compose (and any orchestrator) routes around an instance that cannot
// serve. The "outage" is a TCP proxy between the app and the shared
// PostgreSQL server being closed and reopened: the server itself is shared
// by every test and is never stopped.
package deploy_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
)

// proxy forwards TCP connections from its address to target until closed.
type proxy struct {
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func (p *proxy) start(t *testing.T) {
	t.Helper()
	addr := p.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // the port may linger briefly after stop
	}
	if err != nil {
		t.Fatalf("proxy listen on %s: %v", addr, err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	if p.conns == nil {
		p.conns = map[net.Conn]bool{}
	}
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *proxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
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

// stop closes the listener and every connection: the database is gone.
func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
}

func TestReadyzFollowsPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for reconnections")
	}
	p := &proxy{}
	a := apptest.Postgres(t, func(cfg *app.Config) {
		u, err := url.Parse(cfg.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		p.target = u.Host
		p.start(t)
		u.Host = p.addr
		cfg.DatabaseURL = u.String()
	})
	t.Cleanup(p.stop)
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)

	waitReady := func(want int, what string) string {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			resp, err := http.Get(srv.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /readyz still %d %s", what, resp.StatusCode, b)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitReady(http.StatusOK, "at start")
	if resp, err := http.Get(srv.URL + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %v %v", resp, err)
	}

	p.stop()
	body := waitReady(http.StatusServiceUnavailable, "PostgreSQL stopped")
	if !strings.Contains(body, "store") {
		t.Errorf("not-ready body does not name the store: %s", body)
	}
	// Alive all the same: an orchestrator must not kill it for the outage.
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz during the outage: %v %v", resp, err)
	}
	resp.Body.Close()

	p.start(t)
	waitReady(http.StatusOK, "PostgreSQL back")
}

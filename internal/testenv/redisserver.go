package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisServer is a redis-server of the test's own, on a free loopback port,
// that the test may stop and start again to play an outage — never the
// shared server of TASKQUEUE_TEST_REDIS_URL. It keeps nothing on disk.
type RedisServer struct {
	t    testing.TB
	addr string
	port int
	host *Host // nil: the loopback
	cmd  *exec.Cmd
}

// StartRedisServer starts a redis-server for t and stops it when t ends.
// Without redis-server on PATH it skips t (fails it when services are
// required).
func StartRedisServer(t testing.TB) *RedisServer {
	t.Helper()
	return StartRedisServerOn(t, nil)
}

// StartRedisServerOn is StartRedisServer on a host of a Network (in its
// namespace, on its address, port 6379); nil is the loopback.
func StartRedisServerOn(t testing.TB, host *Host) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if Required() {
			t.Fatal("redis-server is not on PATH and TASKQUEUE_TEST_REQUIRE_SERVICES=1")
		}
		t.Skip("redis-server is not on PATH")
	}
	r := &RedisServer{t: t, addr: "127.0.0.1", port: 6379, host: host} // a host has its ports to itself
	if host != nil {
		r.addr = host.IP
	} else {
		l, err := listenBelowEphemeral() // restarted on its port: see listenBelowEphemeral
		if err != nil {
			t.Fatal(err)
		}
		r.port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// URL is the server's redis:// URL (database 0).
func (r *RedisServer) URL() string {
	return fmt.Sprintf("redis://%s/0", net.JoinHostPort(r.addr, strconv.Itoa(r.port)))
}

// Start starts the server (again, after Stop) on its port and waits until
// it answers PING.
func (r *RedisServer) Start() {
	r.t.Helper()
	args := []string{"--port", strconv.Itoa(r.port), "--bind", r.addr, "--save", "", "--appendonly", "no", "--daemonize", "no"}
	if r.host != nil { // reached from other hosts, without a password
		r.cmd = r.host.Command("redis-server", append(args, "--protected-mode", "no")...)
	} else {
		r.cmd = exec.Command("redis-server", args...)
	}
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !r.answers() {
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on %s:%d did not answer PING within 30s", r.addr, r.port)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// answers reports whether the server replies +PONG to an inline PING.
func (r *RedisServer) answers() bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(r.addr, strconv.Itoa(r.port)), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.TrimSpace(line) == "+PONG"
}

// Stop kills the server (an outage: no clean shutdown) and waits for it.
func (r *RedisServer) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

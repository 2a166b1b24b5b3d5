package web_test

import (
	"net/netip"
	"testing"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
)

// TestTrustedProxyRateLimitsPerClient: behind a trusted proxy (the test's
// client at 127.0.0.1) each client of X-Forwarded-For has its own
// per-address bucket, and a forged entry left of the proxy's does not
// escape it; without trusted proxies the header changes nothing.
func TestTrustedProxyRateLimitsPerClient(t *testing.T) {
	untilLimited := func(t *testing.T, c *client, token, xff string) int {
		t.Helper()
		for i := range 20 {
			r := c.do(req{method: "POST", path: "/api/queue/alice/stop", token: token, headers: map[string]string{"X-Forwarded-For": xff}})
			if r.status == 429 {
				return i
			}
		}
		t.Fatalf("20 commands from %s never got 429", xff)
		return 0
	}
	// 20 per minute per address: bursts of 2. No per-player limit.
	limits := func(c *app.Config) { c.RateLimitIP, c.RateLimitPlayer = 20, -1 }

	t.Run("trusted", func(t *testing.T) {
		a := apptest.SQLite(t, limits, func(c *app.Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		})
		c := newClient(t, a)
		alice := devToken(t, c, "alice")
		if n := untilLimited(t, c, alice, "203.0.113.1"); n < 2 {
			t.Fatalf("203.0.113.1 limited after %d commands, want the burst of 2", n)
		}
		if r := c.do(req{method: "POST", path: "/api/queue/alice/stop", token: alice, headers: map[string]string{"X-Forwarded-For": "198.51.100.5, 203.0.113.1"}}); r.status != 429 {
			t.Fatalf("a forged first entry escaped 203.0.113.1's limit: %d", r.status)
		}
		if r := c.do(req{method: "POST", path: "/api/queue/alice/stop", token: alice, headers: map[string]string{"X-Forwarded-For": "203.0.113.2"}}); r.status == 429 {
			t.Fatalf("203.0.113.2 limited by 203.0.113.1's commands")
		}
	})
	t.Run("untrusted", func(t *testing.T) {
		a := apptest.SQLite(t, limits)
		c := newClient(t, a)
		alice := devToken(t, c, "alice")
		untilLimited(t, c, alice, "203.0.113.1")
		if r := c.do(req{method: "POST", path: "/api/queue/alice/stop", token: alice, headers: map[string]string{"X-Forwarded-For": "203.0.113.2"}}); r.status != 429 {
			t.Fatalf("X-Forwarded-For from an untrusted peer chose the bucket: %d", r.status)
		}
	})
}

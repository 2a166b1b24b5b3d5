package web

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestForwardedClient(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	cases := []struct {
		name   string
		peer   string
		xff    []string
		client string // "" when RemoteAddr stands
	}{
		{"untrusted peer: header ignored", "203.0.113.9:4000", []string{"198.51.100.1"}, ""},
		{"trusted peer without header", "10.0.0.2:4000", nil, ""},
		{"trusted peer names the client", "10.0.0.2:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"a forged entry left of the client is ignored", "10.0.0.2:4000", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"trusted hops are skipped", "10.0.0.2:4000", []string{"198.51.100.1, 10.1.2.3"}, "198.51.100.1"},
		{"several header lines are one list", "10.0.0.2:4000", []string{"1.1.1.1, 198.51.100.1", "10.9.9.9"}, "198.51.100.1"},
		{"garbage stops the walk at the last vouched hop", "10.0.0.2:4000", []string{"198.51.100.1, not-an-ip, 10.3.3.3"}, "10.3.3.3"},
		{"garbage right away keeps the peer", "10.0.0.2:4000", []string{"junk"}, ""},
		{"IPv6 peer and client", "[::1]:4000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv4-mapped client", "[::1]:4000", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"client with a port", "10.0.0.2:4000", []string{"198.51.100.1:5555"}, "198.51.100.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.peer
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got, ok := forwardedClient(r, trusted)
			switch {
			case c.client == "" && ok:
				t.Fatalf("client %s, want the peer to stand", got)
			case c.client != "" && (!ok || got.String() != c.client):
				t.Fatalf("client %s (%v), want %s", got, ok, c.client)
			}
		})
	}
}

package web

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr puts the client's address in r.RemoteAddr when the request
// came through one of the trusted proxies, so that the access log and the
// per-address rate limit see the client instead of the proxy.
//
// Only a trusted peer's X-Forwarded-For is believed, and only as far as it
// goes through trusted hops: the list is read from the right (the entry
// the nearest proxy added) and the first address that is not a trusted
// proxy is the client. Anything to the left of it was written by the
// client and could be forged; an entry that does not parse stops the walk
// at the last hop a trusted proxy vouched for. A request from any other
// peer keeps its RemoteAddr, whatever headers it sends. The port of the
// rewritten RemoteAddr is 0: a proxy does not tell the client's port.
func clientAddr(trusted []netip.Prefix) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if len(trusted) == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if client, ok := forwardedClient(r, trusted); ok {
				r2 := r.Clone(r.Context())
				r2.RemoteAddr = net.JoinHostPort(client.String(), "0")
				r = r2
			}
			next.ServeHTTP(w, r)
		})
	}
}

// forwardedClient returns the client address X-Forwarded-For gives when
// r's peer is a trusted proxy; ok is false when r's RemoteAddr stands.
func forwardedClient(r *http.Request, trusted []netip.Prefix) (netip.Addr, bool) {
	peer, ok := parseAddr(r.RemoteAddr)
	if !ok || !isTrusted(peer, trusted) {
		return netip.Addr{}, false
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseAddr(strings.TrimSpace(hops[i]))
		if !ok {
			break
		}
		client = a
		if !isTrusted(a, trusted) {
			break
		}
	}
	return client, client != peer
}

// parseAddr reads an address with or without a port ("[::1]:80",
// "10.0.0.1", "2001:db8::1"), IPv4-mapped IPv6 unmapped.
func parseAddr(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

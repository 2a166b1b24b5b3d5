// Command oidcprovider serves internal/oidcprovider's OpenID provider (a
// real one, zitadel/oidc's op package with its login page) for the web
// app's browser test of sign-in (web/app/e2e/oidc.mjs). Test-only.
//
//	oidcprovider -redirect http://127.0.0.1:8080/ -user alice:alice-pw:player
//
// It prints "issuer <URL>" once it serves, then serves until SIGINT or
// SIGTERM.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/taskqueue/taskqueue/internal/oidcprovider"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	client := flag.String("client", "taskqueue", "the public client's ID")
	var redirects, users list
	flag.Var(&redirects, "redirect", "a redirect URI of the client (also its post-logout URI); repeatable")
	flag.Var(&users, "user", "username:password:role; repeatable")
	flag.Parse()
	cfg := oidcprovider.Config{Addr: *addr, ClientID: *client, RedirectURIs: redirects, PostLogoutRedirectURIs: redirects}
	for _, u := range users {
		parts := strings.SplitN(u, ":", 3)
		if len(parts) != 3 {
			fmt.Fprintf(os.Stderr, "oidcprovider: -user %q is not username:password:role\n", u)
			os.Exit(2)
		}
		cfg.Users = append(cfg.Users, oidcprovider.User{ID: parts[0], Username: parts[0], Password: parts[1],
			Claims: map[string]any{"role": parts[2]}})
	}
	p, err := oidcprovider.Start(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "oidcprovider:", err)
		os.Exit(1)
	}
	fmt.Println("issuer", p.Issuer())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	_ = p.Close()
}

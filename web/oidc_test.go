package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/internal/oidcprovider"
)

// TestSignInWithOpenIDProvider runs the service (SQLite and PostgreSQL)
// against a real OpenID provider started by the test: the web app learns
// the provider's endpoints from GET /api/auth/config, the provider's access
// tokens reach the REST routes and the WebSocket with their role, and a
// player's still reaches only its own queue.
func TestSignInWithOpenIDProvider(t *testing.T) {
	const redirect = "http://127.0.0.1:1/"
	p, err := oidcprovider.Start(oidcprovider.Config{
		ClientID:     "taskqueue-web",
		RedirectURIs: []string{redirect},
		Users: []oidcprovider.User{
			{ID: "alice", Username: "alice", Password: "alice-pw"},
			{ID: "root", Username: "root", Password: "root-pw", Claims: map[string]any{"groups": []string{"game-admins"}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	withProvider := func(c *app.Config) {
		c.OIDCIssuer, c.OIDCClientID = p.Issuer(), "taskqueue-web"
		c.OIDCRoleClaim, c.OIDCRoleMap = "groups", "game-admins:admin"
	}
	for name, build := range map[string]func(testing.TB, ...apptest.Option) *app.App{"sqlite": apptest.SQLite, "postgres": apptest.Postgres} {
		t.Run(name, func(t *testing.T) {
			a := build(t, withProvider)
			srv := httptest.NewServer(a.Handler)
			t.Cleanup(srv.Close)
			ctx := context.Background()

			res, err := http.Get(srv.URL + "/api/auth/config")
			if err != nil {
				t.Fatal(err)
			}
			var cfg struct {
				OIDC struct {
					Issuer, ClientID, AuthorizationEndpoint, TokenEndpoint, EndSessionEndpoint string
				}
			}
			if err := json.NewDecoder(res.Body).Decode(&cfg); err != nil || res.StatusCode != 200 {
				t.Fatalf("GET /api/auth/config: %s, %v", res.Status, err)
			}
			res.Body.Close()
			if cfg.OIDC.Issuer != p.Issuer() || cfg.OIDC.ClientID != "taskqueue-web" || !strings.HasPrefix(cfg.OIDC.AuthorizationEndpoint, p.Issuer()) ||
				!strings.HasPrefix(cfg.OIDC.TokenEndpoint, p.Issuer()) || !strings.HasPrefix(cfg.OIDC.EndSessionEndpoint, p.Issuer()) {
				t.Fatalf("GET /api/auth/config: %+v", cfg.OIDC)
			}

			alice, err := p.SignIn(ctx, redirect, "alice", "alice-pw")
			if err != nil {
				t.Fatal(err)
			}
			root, err := p.SignIn(ctx, redirect, "root", "root-pw")
			if err != nil {
				t.Fatal(err)
			}
			get := func(path, token string) int {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				return res.StatusCode
			}
			for _, c := range []struct {
				path, token string
				want        int
			}{
				{"/api/queue/alice", alice.AccessToken, 200},
				{"/api/queue/root", alice.AccessToken, 403},
				{"/api/admin/projections", alice.AccessToken, 403},
				{"/api/queue/alice", root.AccessToken, 200},
				{"/api/admin/projections", root.AccessToken, 200},
				{"/api/queue/alice", alice.IDToken, 200}, // the ID token's audience is the client too
				{"/api/queue/alice", alice.AccessToken + "x", 401},
			} {
				if got := get(c.path, c.token); got != c.want {
					t.Errorf("GET %s: %d, want %d", c.path, got, c.want)
				}
			}

			// GET /api/auth/me: the principal through the role claim and map
			// (root's token has no "role": the web app read "player" from it).
			for _, c := range []struct{ token, player, role string }{
				{alice.AccessToken, "alice", "player"}, {root.AccessToken, "root", "admin"},
			} {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/auth/me", nil)
				req.Header.Set("Authorization", "Bearer "+c.token)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var me struct{ PlayerID, Role string }
				err = json.NewDecoder(res.Body).Decode(&me)
				res.Body.Close()
				if err != nil || res.StatusCode != 200 || me.PlayerID != c.player || me.Role != c.role {
					t.Errorf("GET /api/auth/me as %s: %s %+v %v, want %s/%s", c.player, res.Status, me, err, c.player, c.role)
				}
			}
			if got := get("/api/auth/me", alice.AccessToken+"x"); got != 401 {
				t.Errorf("GET /api/auth/me with a bad token: %d, want 401", got)
			}

			// A refreshed token works; so does the WebSocket with the provider's token.
			fresh, err := p.Refresh(ctx, redirect, alice.RefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			if got := get("/api/queue/alice", fresh.AccessToken); got != 200 {
				t.Errorf("a refreshed access token: %d, want 200", got)
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			conn, _, err := websocket.Dial(wctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/api/ws", &websocket.DialOptions{
				HTTPHeader: http.Header{"Authorization": {"Bearer " + alice.AccessToken}},
			})
			if err != nil {
				t.Fatalf("WebSocket with the provider's token: %v", err)
			}
			conn.CloseNow()
			if _, res, err := websocket.Dial(wctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/api/ws", &websocket.DialOptions{
				HTTPHeader: http.Header{"Authorization": {"Bearer " + alice.AccessToken + "x"}},
			}); err == nil || res == nil || res.StatusCode != 401 {
				t.Errorf("WebSocket with a broken token: %v, want 401", err)
			}
		})
	}
}

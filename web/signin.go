package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/taskqueue/taskqueue/auth"
)

// SignIn is how the web app signs a player in with the OpenID provider:
// the authorization code flow with PKCE, in the browser, as a public
// client (no client secret). The app then sends the provider's access
// token as its bearer token, refreshes it before it expires with the
// refresh token, and signs out at the provider's end_session_endpoint.
type SignIn struct {
	// Issuer is the provider's issuer URL.
	Issuer string
	// ClientID is the web app's client ID at the provider.
	ClientID string
	// Scopes are asked for at sign-in ("openid offline_access" by default
	// in app: offline_access is what most providers want before they
	// issue a refresh token).
	Scopes []string
	// Discover returns the provider's endpoints (auth.OIDC.Discover).
	Discover func(ctx context.Context) (auth.Discovery, error)
}

type authConfigResponse struct {
	Dev  bool              `json:"dev"`
	OIDC *oidcConfigAnswer `json:"oidc,omitempty"`
}

type oidcConfigAnswer struct {
	Issuer                string   `json:"issuer"`
	ClientID              string   `json:"clientId"`
	Scopes                []string `json:"scopes"`
	AuthorizationEndpoint string   `json:"authorizationEndpoint"`
	TokenEndpoint         string   `json:"tokenEndpoint"`
	EndSessionEndpoint    string   `json:"endSessionEndpoint,omitempty"`
}

// authConfig serves GET /api/auth/config: how the web app may sign a
// player in (dev mode's name-only sign-in, the OpenID provider, or neither:
// a pasted token). It needs no token. While the provider's discovery
// document cannot be read it answers 503 with Retry-After.
func (s *Server) authConfig(w http.ResponseWriter, r *http.Request) {
	res := authConfigResponse{Dev: s.dev}
	if s.signIn != nil {
		d, err := s.signIn.Discover(r.Context())
		if err != nil {
			s.writeProblem(w, r, fmt.Errorf("sign-in configuration: %w", err))
			return
		}
		scopes := s.signIn.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		res.OIDC = &oidcConfigAnswer{
			Issuer:                s.signIn.Issuer,
			ClientID:              s.signIn.ClientID,
			Scopes:                scopes,
			AuthorizationEndpoint: d.AuthorizationEndpoint,
			TokenEndpoint:         d.TokenEndpoint,
			EndSessionEndpoint:    d.EndSessionEndpoint,
		}
	}
	writeJSON(w, http.StatusOK, res)
}

// principalAnswer is the caller as the server reads its token.
type principalAnswer struct {
	PlayerID string `json:"playerId"`
	Role     string `json:"role"`
}

// me serves GET /api/auth/me: the caller's player ID and role as the
// server reads them from its token, through the configured claims and role
// map (TASKQUEUE_OIDC_PLAYER_CLAIM, TASKQUEUE_OIDC_ROLE_CLAIM,
// TASKQUEUE_OIDC_ROLE_MAP). The web app acts as this principal: a
// provider's token need not carry "sub" and "role" as taskqueue means them.
func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.PrincipalFrom(r.Context())
	writeJSON(w, http.StatusOK, principalAnswer{PlayerID: p.PlayerID, Role: string(p.Role)})
}

// providerOrigins are the origins of the OpenID provider the web app's
// page connects to (the issuer's, and the token endpoint's once
// discovered), for its Content-Security-Policy; none without a provider.
func (s *Server) providerOrigins(ctx context.Context) []string {
	if s.signIn == nil {
		return nil
	}
	var out []string
	add := func(raw string) {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || !validHost(u.Host) {
			return
		}
		o := u.Scheme + "://" + u.Host
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	add(s.signIn.Issuer)
	// Discovery is cached once read; while the provider is away, a page
	// load does not wait for it (the issuer's origin is there anyway).
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if d, err := s.signIn.Discover(ctx); err == nil {
		add(d.TokenEndpoint)
	}
	return out
}

package web

import (
	"context"
	"fmt"
	"net/http"

	"github.com/taskqueue/taskqueue/web/auth"
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

package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"

	"github.com/taskqueue/taskqueue/internal/faults"
)

// OIDC verifies the tokens of an OpenID Connect provider (the game's
// identity provider): JWTs of its issuer, for the configured audience,
// signed with a key of its JWKS.
//
// How the keys are kept (coreos/go-oidc does the key handling):
//   - The provider's discovery document (issuer/.well-known/openid-configuration)
//     is read on first use, not at start, so a provider that is down when
//     taskqueue starts delays sign-in, not the start. While it cannot be
//     read, Verify returns an error wrapping faults.ErrUnavailable (503),
//     and tries again at most every DiscoveryRetry.
//   - The JWKS named by discovery is fetched when a token names a key ("kid")
//     the cached set lacks, so the provider can rotate its keys with no
//     restart: a provider publishes a new key before it signs with it, and
//     keeps the old one published until the tokens it signed expire.
//   - Those fetches are rate limited to one per KeyRefreshInterval: in
//     between, the cached set answers (a flood of tokens with made-up kids
//     costs the provider one request per interval, and keeps the cache
//     fresh for a key published since).
//
// The algorithms accepted are RS256/384/512, PS256/384/512, ES256/384/512
// and EdDSA, whatever the provider's discovery lists: never "none" and
// never an HMAC (a token signed with the provider's public key as an HMAC
// secret is refused). OIDC is safe for concurrent use.
type OIDC struct {
	cfg    OIDCConfig
	client *http.Client
	jwks   *limitedTransport

	mu        sync.Mutex
	verifier  *oidc.IDTokenVerifier
	discovery Discovery
	lastTry   time.Time
	lastErr   error
}

// OIDCConfig configures OIDC.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL, exactly as its tokens' "iss"
	// and its discovery document say it. Required.
	Issuer string
	// Audience must be among the tokens' "aud" (usually the client ID of
	// the web app at the provider). Required.
	Audience string
	// RoleClaim names the claim that carries the role, a dot-separated
	// path into nested objects ("realm_access.roles"); its value is a
	// string, an array of strings, or an object whose keys are the role
	// names (Zitadel's project roles). Default "role".
	RoleClaim string
	// RoleMap maps the provider's role names to taskqueue's; the names
	// "player", "admin" and "system" map to themselves unless mapped here.
	// Of several roles the strongest wins (admin, then system, then
	// player); a token with none is a player's.
	RoleMap map[string]Role
	// PlayerClaim names the claim that carries the player ID, which must be
	// 1–64 characters of [A-Za-z0-9_-] like every player ID. Default "sub".
	PlayerClaim string
	// KeyRefreshInterval is the least time between two fetches of the JWKS
	// for a token of an unknown key. Default 10 s.
	KeyRefreshInterval time.Duration
	// DiscoveryRetry is the least time between two attempts to read the
	// discovery document while it fails. Default 5 s.
	DiscoveryRetry time.Duration
	// HTTPClient fetches discovery and the JWKS; its timeout bounds each
	// fetch. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Discovery is what the web app needs of the provider's discovery document
// to sign a player in (authorization code with PKCE) and out.
type Discovery struct {
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	// EndSessionEndpoint is empty when the provider offers no RP-initiated
	// logout.
	EndSessionEndpoint string `json:"end_session_endpoint"`
	JWKSURI            string `json:"jwks_uri"`
}

// Defaults of OIDCConfig.
const (
	DefaultRoleClaim          = "role"
	DefaultPlayerClaim        = "sub"
	DefaultKeyRefreshInterval = 10 * time.Second
	DefaultDiscoveryRetry     = 5 * time.Second
)

// SigningAlgorithms are the algorithms OIDC accepts.
var SigningAlgorithms = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512, oidc.EdDSA,
}

// NewOIDC returns the verifier of cfg's issuer. It does no I/O.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	var errs []error
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("new OIDC verifier: issuer is required"))
	}
	if cfg.Audience == "" {
		errs = append(errs, errors.New("new OIDC verifier: audience is required"))
	}
	for name, r := range cfg.RoleMap {
		if !r.Valid() {
			errs = append(errs, fmt.Errorf("new OIDC verifier: %q maps to %q, not player, admin or system", name, r))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.RoleClaim == "" {
		cfg.RoleClaim = DefaultRoleClaim
	}
	if cfg.PlayerClaim == "" {
		cfg.PlayerClaim = DefaultPlayerClaim
	}
	if cfg.KeyRefreshInterval <= 0 {
		cfg.KeyRefreshInterval = DefaultKeyRefreshInterval
	}
	if cfg.DiscoveryRetry <= 0 {
		cfg.DiscoveryRetry = DefaultDiscoveryRetry
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	base := cfg.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: 10 * time.Second}
	}
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	jwks := &limitedTransport{base: rt, every: cfg.KeyRefreshInterval, now: cfg.Now}
	client := *base
	client.Transport = jwks
	return &OIDC{cfg: cfg, client: &client, jwks: jwks}, nil
}

// Issuer is the issuer whose tokens o verifies.
func (o *OIDC) Issuer() string { return o.cfg.Issuer }

// Discover returns the provider's endpoints, reading its discovery
// document when not read yet.
func (o *OIDC) Discover(ctx context.Context) (Discovery, error) {
	if _, err := o.idTokenVerifier(ctx); err != nil {
		return Discovery{}, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.discovery, nil
}

// Verify checks token and returns its principal, or an error wrapping
// ErrUnauthorized (or faults.ErrUnavailable while the provider's discovery
// cannot be read).
func (o *OIDC) Verify(ctx context.Context, token string) (Principal, error) {
	v, err := o.idTokenVerifier(ctx)
	if err != nil {
		return Principal{}, err
	}
	tok, err := v.Verify(ctx, token)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrUnauthorized, err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Principal{}, fmt.Errorf("%w: claims: %v", ErrUnauthorized, err)
	}
	player, _ := lookupClaim(claims, o.cfg.PlayerClaim).(string)
	if !ValidPlayerID(player) {
		return Principal{}, fmt.Errorf("%w: claim %s %q is not a player ID", ErrUnauthorized, o.cfg.PlayerClaim, player)
	}
	// The provider's "sid" names its own session, not one of taskqueue's
	// sessions: the principal has none (refresh and sign-out happen at the
	// provider).
	return Principal{PlayerID: player, Role: o.role(lookupClaim(claims, o.cfg.RoleClaim)), ExpiresAt: tok.Expiry}, nil
}

// role maps the role claim's value to the strongest role it names.
func (o *OIDC) role(v any) Role {
	var names []string
	switch v := v.(type) {
	case string:
		names = strings.Fields(v)
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				names = append(names, s)
			}
		}
	case map[string]any:
		for k := range v {
			names = append(names, k)
		}
	}
	best := RolePlayer
	for _, n := range names {
		r, ok := o.cfg.RoleMap[n]
		if !ok {
			r = Role(n)
		}
		if rank(r) > rank(best) {
			best = r
		}
	}
	return best
}

func rank(r Role) int {
	switch r {
	case RoleAdmin:
		return 3
	case RoleSystem:
		return 2
	case RolePlayer:
		return 1
	}
	return 0
}

// lookupClaim follows a dot-separated path into claims; a claim whose own
// name holds dots is found too.
func lookupClaim(claims map[string]any, path string) any {
	if v, ok := claims[path]; ok {
		return v
	}
	var cur any = claims
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[part]; !ok {
			return nil
		}
	}
	return cur
}

// idTokenVerifier returns the verifier built from the discovery document,
// reading it when not read yet (at most every DiscoveryRetry while it
// fails).
func (o *OIDC) idTokenVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	now := o.cfg.Now()
	if o.lastErr != nil && now.Sub(o.lastTry) < o.cfg.DiscoveryRetry {
		return nil, o.lastErr
	}
	o.lastTry = now
	d, err := o.discover(ctx)
	if err != nil {
		o.lastErr = fmt.Errorf("%w: OpenID provider %s: %v", faults.ErrUnavailable, o.cfg.Issuer, err)
		return nil, o.lastErr
	}
	o.jwks.limit(d.JWKSURI)
	// The key set lives as long as o: its context carries only the client.
	keys := oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), o.client), d.JWKSURI)
	o.verifier = oidc.NewVerifier(o.cfg.Issuer, keys, &oidc.Config{
		ClientID:             o.cfg.Audience,
		SupportedSigningAlgs: SigningAlgorithms,
		Now:                  o.cfg.Now,
	})
	o.discovery, o.lastErr = d, nil
	return o.verifier, nil
}

// discover reads the discovery document (go-oidc checks that it names
// the configured issuer).
func (o *OIDC) discover(ctx context.Context) (Discovery, error) {
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, o.client), o.cfg.Issuer)
	if err != nil {
		return Discovery{}, fmt.Errorf("discovery: %w", err)
	}
	var d Discovery
	if err := p.Claims(&d); err != nil {
		return Discovery{}, fmt.Errorf("discovery: %w", err)
	}
	if d.JWKSURI == "" {
		return Discovery{}, errors.New("discovery: no jwks_uri")
	}
	return d, nil
}

// limitedTransport lets at most one request for the JWKS through per
// interval; in between it answers with the last key set fetched. Other
// requests (discovery) pass through.
type limitedTransport struct {
	base  http.RoundTripper
	every time.Duration
	now   func() time.Time

	mu     sync.Mutex
	url    string
	last   time.Time
	body   []byte
	header http.Header
}

func (t *limitedTransport) limit(url string) {
	t.mu.Lock()
	t.url = url
	t.mu.Unlock()
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	if req.Method != http.MethodGet || req.URL.String() != t.url {
		t.mu.Unlock()
		return t.base.RoundTrip(req)
	}
	now := t.now()
	if t.body != nil && now.Sub(t.last) < t.every {
		body, header := t.body, t.header.Clone()
		t.mu.Unlock()
		return &http.Response{
			StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: header, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
		}, nil
	}
	t.last = now
	t.mu.Unlock()
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if json.Valid(body) {
		t.mu.Lock()
		t.body, t.header = body, resp.Header.Clone()
		t.mu.Unlock()
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// Verifiers is the Verifier of a server: a token whose (unverified) "iss"
// is the OIDC issuer goes to OIDC, any other to Tokens, the HS256 tokens
// the service mints itself. Either way the chosen verifier checks the
// issuer again, with the signature.
type Verifiers struct {
	// Tokens verifies the service's own tokens. Required.
	Tokens *Tokens
	// OIDC verifies the provider's tokens; nil: none.
	OIDC *OIDC
}

// Verify implements Verifier.
func (v Verifiers) Verify(ctx context.Context, token string) (Principal, error) {
	if v.OIDC != nil {
		var c jwt.RegisteredClaims
		if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err == nil && c.Issuer == v.OIDC.Issuer() {
			return v.OIDC.Verify(ctx, token)
		}
	}
	return v.Tokens.Verify(ctx, token)
}

package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/internal/oidcprovider"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

const redirectURI = "http://127.0.0.1:1/"

var providerUsers = []oidcprovider.User{
	{ID: "alice", Username: "alice", Password: "alice-pw"},
	{ID: "root", Username: "root", Password: "root-pw", Claims: map[string]any{"role": "admin", "groups": []string{"game-admins"}}},
	{ID: "bob", Username: "bob", Password: "bob-pw", Claims: map[string]any{"groups": []string{"players", "game-ops"}}},
	{ID: "auth0|42", Username: "piped", Password: "piped-pw"},
}

// startProvider starts a real OpenID provider (zitadel/oidc's op) for the
// test.
func startProvider(t *testing.T) *oidcprovider.Provider {
	t.Helper()
	p, err := oidcprovider.Start(oidcprovider.Config{ClientID: "taskqueue-web", RedirectURIs: []string{redirectURI}, Users: providerUsers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// clock is a clock the test moves forward.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

func newOIDC(t *testing.T, p *oidcprovider.Provider, c *clock, mut func(*OIDCConfig)) *OIDC {
	t.Helper()
	cfg := OIDCConfig{Issuer: p.Issuer(), Audience: "taskqueue-web", Now: c.now}
	if mut != nil {
		mut(&cfg)
	}
	o, err := NewOIDC(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func signIn(t *testing.T, p *oidcprovider.Provider, user string) string {
	t.Helper()
	tok, err := p.SignIn(context.Background(), redirectURI, user, user+"-pw")
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

// expOf reads the "exp" claim of token, which the test trusts (it comes
// from the provider the test started).
func expOf(t *testing.T, token string) time.Time {
	t.Helper()
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil || c.ExpiresAt == nil {
		t.Fatalf("token without exp: %v", err)
	}
	return c.ExpiresAt.Time
}

// Every verifier fills the principal's expiry with the token's "exp", on
// both paths of Verifiers (the service's HS256 tokens, the provider's
// tokens checked against its JWKS): the realtime hub closes a socket at
// that instant and reads the token no more.
func TestVerifiersFillExpiresAt(t *testing.T) {
	p := startProvider(t)
	c := &clock{}
	tokens, err := NewTokens(TokensConfig{Secret: testSecret, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	v := Verifiers{Tokens: tokens, OIDC: newOIDC(t, p, c, nil)}
	own, exp, err := tokens.Mint("alice", RolePlayer, 90*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(context.Background(), own)
	if err != nil || !got.ExpiresAt.Equal(exp) {
		t.Fatalf("HS256 token expiring at %s: got %+v, %v", exp, got, err)
	}
	provider := signIn(t, p, "root")
	want := expOf(t, provider)
	if !want.After(c.now()) {
		t.Fatalf("the provider's token expires at %s, not in the future", want)
	}
	got, err = v.Verify(context.Background(), provider)
	if err != nil || got.Role != RoleAdmin || !got.ExpiresAt.Equal(want) {
		t.Fatalf("OIDC token expiring at %s: got %+v, %v", want, got, err)
	}
}

func TestOIDCAcceptsTheProvidersTokensWithTheirRole(t *testing.T) {
	p := startProvider(t)
	c := &clock{}
	byRole := newOIDC(t, p, c, nil)
	byGroups := newOIDC(t, p, c, func(cfg *OIDCConfig) {
		cfg.RoleClaim = "groups"
		cfg.RoleMap = map[string]Role{"game-admins": RoleAdmin, "game-ops": RoleSystem}
	})
	cases := []struct {
		user string
		v    *OIDC
		want Principal
	}{
		{"alice", byRole, Principal{PlayerID: "alice", Role: RolePlayer}}, // no role claim: a player
		{"root", byRole, Principal{PlayerID: "root", Role: RoleAdmin}},
		{"root", byGroups, Principal{PlayerID: "root", Role: RoleAdmin}},
		{"bob", byGroups, Principal{PlayerID: "bob", Role: RoleSystem}}, // the strongest of players, game-ops
		{"alice", byGroups, Principal{PlayerID: "alice", Role: RolePlayer}},
	}
	for _, tc := range cases {
		tok := signIn(t, p, tc.user)
		tc.want.ExpiresAt = expOf(t, tok)
		got, err := tc.v.Verify(context.Background(), tok)
		if err != nil || !samePrincipal(got, tc.want) {
			t.Errorf("%s (role claim %s): got %+v, %v; want %+v", tc.user, tc.v.cfg.RoleClaim, got, err, tc.want)
		}
	}
	// A subject that is not a player ID is refused.
	if got, err := byRole.Verify(context.Background(), signIn(t, p, "piped")); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("sub auth0|42: got %+v, %v; want ErrUnauthorized", got, err)
	}
}

func TestOIDCFollowsKeyRotationWithoutRestart(t *testing.T) {
	p := startProvider(t)
	c := &clock{}
	o := newOIDC(t, p, c, nil)
	ctx := context.Background()

	old := signIn(t, p, "alice")
	if _, err := o.Verify(ctx, old); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256} {
		c.advance(15 * time.Second) // a rotation happens long after the last fetch of the keys
		kid, err := p.RotateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		fresh := signIn(t, p, "root")
		if got := kidOf(t, fresh); got != kid {
			t.Fatalf("the provider signed with %s, not the new key %s", got, kid)
		}
		before := p.JWKSRequests()
		if got, err := o.Verify(ctx, fresh); err != nil || got.Role != RoleAdmin {
			t.Fatalf("a token of the new %s key: %+v, %v", alg, got, err)
		}
		if n := p.JWKSRequests() - before; n != 1 {
			t.Errorf("the new key cost %d fetches of the JWKS, want 1", n)
		}
		if _, err := o.Verify(ctx, old); err != nil {
			t.Errorf("after rotating to %s, a token of the first key (not expired) is refused: %v", alg, err)
		}
	}
	// The old token is accepted until it expires, and not after.
	c.advance(time.Hour)
	if _, err := o.Verify(ctx, old); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("an expired token: %v, want ErrUnauthorized (expired)", err)
	}
}

func TestOIDCRateLimitsKeyFetchesForUnknownKeys(t *testing.T) {
	p := startProvider(t)
	c := &clock{}
	o := newOIDC(t, p, c, func(cfg *OIDCConfig) { cfg.KeyRefreshInterval = 10 * time.Second })
	ctx := context.Background()
	if _, err := o.Verify(ctx, signIn(t, p, "alice")); err != nil {
		t.Fatal(err)
	}
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forge := func(kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
			Issuer: p.Issuer(), Subject: "alice", Audience: jwt.ClaimStrings{"taskqueue-web"},
			ExpiresAt: jwt.NewNumericDate(c.now().Add(time.Hour)),
		})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(forger)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := p.JWKSRequests()
	for i := range 50 {
		if _, err := o.Verify(ctx, forge("made-up-"+string(rune('a'+i%26)))); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("forged token %d: %v, want ErrUnauthorized", i, err)
		}
	}
	if _, err := o.Verify(ctx, forge(p.SigningKeyID())); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("a token forged with the provider's kid: %v, want ErrUnauthorized", err)
	}
	if n := p.JWKSRequests() - before; n > 1 {
		t.Errorf("51 tokens of unknown keys within the interval fetched the JWKS %d times, want at most 1", n)
	}
	c.advance(11 * time.Second)
	before = p.JWKSRequests()
	// go-oidc hands a caller the result of the fetch in flight, and forgets
	// that fetch a moment after its result: the first unknown key may
	// still get the last one's, so the fetch is waited for, while
	// forged tokens keep coming.
	testenv.WaitUntil(t, 10*time.Second, "an unknown key after the interval to fetch the JWKS", func() (bool, error) {
		if _, err := o.Verify(ctx, forge("made-up-later")); !errors.Is(err, ErrUnauthorized) {
			return false, fmt.Errorf("a token of an unknown key: %v, want ErrUnauthorized", err)
		}
		return p.JWKSRequests() > before, nil
	})
	for range 20 {
		if _, err := o.Verify(ctx, forge("made-up-later")); !errors.Is(err, ErrUnauthorized) {
			t.Fatal(err)
		}
	}
	if n := p.JWKSRequests() - before; n != 1 {
		t.Errorf("unknown keys after the interval fetched the JWKS %d times, want 1", n)
	}
}

func TestOIDCRefusesOtherIssuersAudiencesAndAlgorithms(t *testing.T) {
	p := startProvider(t)
	other := startProvider(t) // a real provider too, with the same client ID and users
	c := &clock{}
	o := newOIDC(t, p, c, nil)
	otherAudience := newOIDC(t, p, c, func(cfg *OIDCConfig) { cfg.Audience = "another-app" })
	local, err := NewTokens(TokensConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	both := Verifiers{Tokens: local, OIDC: o}
	ctx := context.Background()

	good := signIn(t, p, "root")
	if _, err := both.Verify(ctx, good); err != nil {
		t.Fatalf("the provider's token through Verifiers: %v", err)
	}
	own, _, err := local.Mint("alice", RolePlayer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := both.Verify(ctx, own); err != nil || got.PlayerID != "alice" {
		t.Fatalf("the service's own token through Verifiers: %+v, %v", got, err)
	}

	parts := strings.Split(good, ".")
	header := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) }
	pub, err := x509.MarshalPKIXPublicKey(p.SigningKey().Public())
	if err != nil {
		t.Fatal(err)
	}
	var payload jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(good, &payload); err != nil {
		t.Fatal(err)
	}
	hsConfused := jwt.NewWithClaims(jwt.SigningMethodHS256, payload)
	hsConfused.Header["kid"] = p.SigningKeyID()
	confused, err := hsConfused.SignedString(pub) // the provider's public key as an HMAC secret
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		v     Verifier
		token string
	}{
		{"another issuer", o, signIn(t, other, "root")},
		{"another issuer through Verifiers", both, signIn(t, other, "root")},
		{"another audience", otherAudience, good},
		{"alg none", o, header(`{"alg":"none","typ":"JWT"}`) + "." + parts[1] + "."},
		{"alg none through Verifiers", both, header(`{"alg":"none","typ":"JWT"}`) + "." + parts[1] + "."},
		{"HS256 with the provider's public key", o, confused},
		{"HS256 with the provider's public key through Verifiers", both, confused},
		{"payload changed", o, parts[0] + "." + strings.TrimRight(base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+p.Issuer()+`","sub":"alice","aud":"taskqueue-web","exp":9999999999,"role":"admin"}`)), "=") + "." + parts[2]},
	}
	for _, tc := range cases {
		if got, err := tc.v.Verify(ctx, tc.token); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: got %+v, %v; want ErrUnauthorized", tc.name, got, err)
		}
	}
}

func TestOIDCProviderDownIsUnavailableNotUnauthorized(t *testing.T) {
	p := startProvider(t)
	tok := signIn(t, p, "alice")
	o := newOIDC(t, p, &clock{}, nil)
	p.Close()
	_, err := o.Verify(context.Background(), tok)
	if !errors.Is(err, faults.ErrUnavailable) || errors.Is(err, ErrUnauthorized) {
		t.Fatalf("provider down at first use: %v, want an unavailable error (the token may be fine)", err)
	}
}

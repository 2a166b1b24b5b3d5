// Package oidcprovider runs a real OpenID provider for tests: zitadel/oidc's
// op package (an OpenID Certified library) with its example server's
// in-memory storage and login page, serving discovery, the JWKS, the
// authorization endpoint (code flow with PKCE), the token endpoint
// (authorization code and refresh token grants) and end_session. On top of
// the example it adds what taskqueue's tests need: users with claims of
// their choosing (a role), JWT access tokens for a public client, and
// signing keys that can be rotated while it serves.
//
// It is a test fixture: its users, passwords and the example's
// encryption key are fixed, and it must never face a network. The Go tests
// start it in-process (Start); the browser test starts it as a process
// (cmd/testoidc).
package oidcprovider

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// User is one account at the provider.
type User struct {
	// ID is the subject ("sub") of the user's tokens.
	ID       string
	Username string
	Password string
	// Claims are added to the user's access tokens ({"role": "admin"}).
	Claims map[string]any
}

// Config configures a Provider.
type Config struct {
	// Addr is where it listens; default 127.0.0.1:0 (a free port).
	Addr string
	// ClientID is the one client, public (PKCE, no secret), whose access
	// tokens are JWTs with the client ID as audience. Default "taskqueue".
	ClientID string
	// RedirectURIs and PostLogoutRedirectURIs are the client's.
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	Users                  []User
}

// Provider is a running OpenID provider. Its methods are safe for
// concurrent use.
type Provider struct {
	issuer string
	srv    *http.Server
	store  *store
	jwks   atomic.Int64
}

// Start starts a provider on cfg.Addr; its issuer is http://<address>.
func Start(cfg Config) (*Provider, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "taskqueue"
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("start OpenID provider: %w", err)
	}
	issuer := "http://" + ln.Addr().String()
	st, err := newStore(cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	p := &Provider{issuer: issuer, store: st}
	router := exampleop.SetupServer(issuer, st, nil, false)
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/keys" {
				p.jwks.Add(1)
			}
			router.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = p.srv.Serve(ln) }() // http.ErrServerClosed once Close stops it
	return p, nil
}

// Issuer is the provider's issuer URL.
func (p *Provider) Issuer() string { return p.issuer }

// JWKSRequests is how many times the JWKS was asked for.
func (p *Provider) JWKSRequests() int64 { return p.jwks.Load() }

// Close stops the provider.
func (p *Provider) Close() error { return p.srv.Close() }

// RotateKey makes a new key of alg (RS256, ES256 or EdDSA) the signing
// key and publishes it beside the old ones, which keep verifying the
// tokens they signed. It returns the new key's ID.
func (p *Provider) RotateKey(alg jose.SignatureAlgorithm) (string, error) {
	k, err := newKey(alg)
	if err != nil {
		return "", err
	}
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.keys = append([]*key{k}, p.store.keys...)
	return k.id, nil
}

// RetireOldKeys stops publishing every key but the signing one.
func (p *Provider) RetireOldKeys() {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.keys = p.store.keys[:1]
}

// SigningKeyID is the ID of the key that signs now.
func (p *Provider) SigningKeyID() string {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	return p.store.keys[0].id
}

// SigningKey is the private key that signs now, for tests that forge.
func (p *Provider) SigningKey() crypto.Signer {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	return p.store.keys[0].private
}

// store is the example's in-memory storage with users, a client and keys
// of this package's.
type store struct {
	*storage.Storage
	client *client
	users  map[string]User

	mu   sync.Mutex
	keys []*key // keys[0] signs; all are published
}

func newStore(cfg Config) (*store, error) {
	users := map[string]*storage.User{}
	byID := map[string]User{}
	for _, u := range cfg.Users {
		users[u.ID] = &storage.User{ID: u.ID, Username: u.Username, Password: u.Password, FirstName: u.Username,
			Email: u.Username + "@example.test", EmailVerified: true, PreferredLanguage: language.English}
		byID[u.ID] = u
	}
	c := &client{id: cfg.ClientID, redirects: cfg.RedirectURIs, logoutRedirects: cfg.PostLogoutRedirectURIs}
	k, err := newKey(jose.RS256)
	if err != nil {
		return nil, err
	}
	st := storage.NewStorageWithClients(userStore{users}, map[string]*storage.Client{})
	return &store{Storage: st, client: c, users: byID, keys: []*key{k}}, nil
}

func (s *store) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if id != s.client.id {
		return nil, errors.New("client not found")
	}
	return s.client, nil
}

func (s *store) SigningKey(context.Context) (op.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[0], nil
}

func (s *store) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[jose.SignatureAlgorithm]bool{}
	var algs []jose.SignatureAlgorithm
	for _, k := range s.keys {
		if !seen[k.alg] {
			seen[k.alg] = true
			algs = append(algs, k.alg)
		}
	}
	return algs, nil
}

func (s *store) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]op.Key, len(s.keys))
	for i, k := range s.keys {
		out[i] = publicKey{k}
	}
	return out, nil
}

// GetPrivateClaimsFromScopes adds the user's claims to its access tokens.
func (s *store) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	claims, err := s.Storage.GetPrivateClaimsFromScopes(ctx, userID, clientID, scopes)
	if err != nil {
		return nil, err
	}
	if u, ok := s.users[userID]; ok && len(u.Claims) > 0 {
		if claims == nil {
			claims = map[string]any{}
		}
		for k, v := range u.Claims {
			claims[k] = v
		}
	}
	return claims, nil
}

type userStore struct{ users map[string]*storage.User }

func (u userStore) GetUserByID(id string) *storage.User { return u.users[id] }
func (u userStore) GetUserByUsername(name string) *storage.User {
	for _, user := range u.users {
		if user.Username == name {
			return user
		}
	}
	return nil
}
func (u userStore) ExampleClientID() string { return storage.ServiceUserID }

type key struct {
	id      string
	alg     jose.SignatureAlgorithm
	private crypto.Signer
}

func newKey(alg jose.SignatureAlgorithm) (*key, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("new key: algorithm %s is not RS256, ES256 or EdDSA", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("new %s key: %w", alg, err)
	}
	return &key{id: uuid.NewString(), alg: alg, private: priv}, nil
}

func (k *key) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k *key) Key() any                                    { return k.private }
func (k *key) ID() string                                  { return k.id }

type publicKey struct{ k *key }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return p.k.alg }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return p.k.private.Public() }

// client is a public client of the browser (user agent): code flow with
// PKCE, refresh tokens, JWT access tokens. DevMode lets it use http://
// redirect URIs (the tests' servers).
type client struct {
	id              string
	redirects       []string
	logoutRedirects []string
}

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return c.redirects }
func (c *client) PostLogoutRedirectURIs() []string    { return c.logoutRedirects }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeUserAgent }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodNone }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}
func (c *client) LoginURL(id string) string            { return "/login/username?authRequestID=" + id }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration       { return time.Hour }
func (c *client) DevMode() bool                        { return true }
func (c *client) IsScopeAllowed(string) bool           { return false }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

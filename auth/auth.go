// Package auth owns who may call the API: the roles (a closed set), the
// principal a request acts as, and the verifiers of the bearer tokens that
// carry them: Tokens (HS256 tokens the service mints itself, with rotatable
// keys), OIDC (tokens of an OpenID provider, checked against its JWKS) and
// Verifiers (the one Verifier the HTTP middleware and the WebSocket both
// use, choosing by the token's issuer). It also keeps the JWT secret
// generated into the data directory in dev mode. It never issues tokens to
// users of a provider: taskqueue trusts an identity provider, it is not one.
//
// Contracts:
//   - Tokens.Verify accepts only HS256 tokens signed with one of the
//     configured keys (chosen by the token's "kid" header; a token without
//     one is checked with the key without an ID), with an "exp" in the
//     future, an "nbf" (when present) in the past, the configured issuer and
//     audience (when configured), a "sub" that is a valid player ID and a
//     "role" of the closed set. Anything else is an error wrapping
//     ErrUnauthorized; the reason is for logs, not clients.
//   - Every Verifier fills Principal.ExpiresAt with the token's "exp", which
//     it requires.
//   - OIDC.Verify accepts only tokens of its issuer, for its audience,
//     signed RS*, PS*, ES* or EdDSA with a key of the issuer's JWKS (see
//     oidc.go).
//   - Claim names ("sub", "role", "sid") are part of the HTTP contract
//     (docs/API.md): renaming one invalidates every token in circulation.
//   - Tokens, OIDC and Verifiers are safe for concurrent use.
package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Role is what a principal may do. The set is closed: RolePlayer, RoleAdmin,
// RoleSystem.
type Role string

const (
	// RolePlayer acts on its own queue only.
	RolePlayer Role = "player"
	// RoleAdmin acts on any queue and on the admin routes.
	RoleAdmin Role = "admin"
	// RoleSystem is a service acting on any queue (the processor, scripts).
	RoleSystem Role = "system"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool { return r == RolePlayer || r == RoleAdmin || r == RoleSystem }

// ParseRole returns the role named s, or an error naming the valid ones.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("role %q is not player, admin or system", s)
	}
	return r, nil
}

// ValidPlayerID reports whether id is 1–64 characters of [A-Za-z0-9_-].
func ValidPlayerID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Principal is who a request acts as.
type Principal struct {
	// PlayerID is the token's subject.
	PlayerID string
	// Role is the token's role.
	Role Role
	// SessionID is the token's "sid", empty when it has none.
	SessionID string
	// ExpiresAt is the token's "exp": every verifier requires one and
	// fills it, so that a long-lived connection (a WebSocket) can end with
	// its token without reading the token again. Zero for a principal that
	// no token carried.
	ExpiresAt time.Time
}

// CanActOn reports whether p may act on playerID's queue: a player only on
// its own, admin and system on any.
func (p Principal) CanActOn(playerID string) bool {
	switch p.Role {
	case RoleAdmin, RoleSystem:
		return true
	case RolePlayer:
		return p.PlayerID == playerID
	}
	return false
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal ctx carries, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// ErrUnauthorized is wrapped by every error of Verify.
var ErrUnauthorized = errors.New("unauthorized")

// Claims are the claims of a taskqueue token.
type Claims struct {
	jwt.RegisteredClaims
	Role      Role   `json:"role"`
	SessionID string `json:"sid,omitempty"`
}

// Validate is called by the JWT parser after the registered claims passed.
func (c Claims) Validate() error {
	if !ValidPlayerID(c.Subject) {
		return fmt.Errorf("sub %q is not a player ID", c.Subject)
	}
	if !c.Role.Valid() {
		return fmt.Errorf("role %q is not player, admin or system", c.Role)
	}
	return nil
}

// Verifier checks a bearer token and returns the principal it names, or an
// error wrapping ErrUnauthorized (a token that is not valid) or
// faults.ErrUnavailable (the provider's keys cannot be fetched). The HTTP
// middleware and the WebSocket both authenticate through one Verifier.
type Verifier interface {
	Verify(ctx context.Context, token string) (Principal, error)
}

// Key is one HS256 key: its ID (the tokens' "kid" header; empty for the
// tokens minted before key IDs, which carry none) and its secret.
type Key struct {
	ID     string
	Secret []byte
}

// Tokens mints and verifies HS256 tokens. The first key signs; every key
// verifies, so that a secret can be rotated: add the new key first, keep
// the old one until the tokens it signed have expired, then drop it.
type Tokens struct {
	keys     []Key
	issuer   string
	audience string
	now      func() time.Time
}

// TokensConfig configures Tokens.
type TokensConfig struct {
	// Secret is the HS256 key, at least 32 bytes, without an ID: the
	// tokens it signs carry no "kid". Used when Keys is empty.
	Secret []byte
	// Keys are the HS256 keys, each at least 32 bytes with a distinct ID:
	// the first signs, all verify.
	Keys []Key
	// Issuer, when set, is written into minted tokens and required on
	// verified ones.
	Issuer string
	// Audience, when set, is written into minted tokens and required on
	// verified ones.
	Audience string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// MinSecretLength is the least number of bytes of a secret.
const MinSecretLength = 32

// NewTokens returns Tokens for cfg.
func NewTokens(cfg TokensConfig) (*Tokens, error) {
	keys := cfg.Keys
	if len(keys) == 0 {
		keys = []Key{{Secret: cfg.Secret}}
	}
	seen := map[string]bool{}
	t := &Tokens{issuer: cfg.Issuer, audience: cfg.Audience, now: cfg.Now}
	for _, k := range keys {
		switch {
		case len(k.Secret) < MinSecretLength:
			return nil, fmt.Errorf("new tokens: secret of key %q is %d bytes, fewer than %d", k.ID, len(k.Secret), MinSecretLength)
		case seen[k.ID]:
			return nil, fmt.Errorf("new tokens: key ID %q given twice", k.ID)
		case k.ID != "" && !ValidKeyID(k.ID):
			return nil, fmt.Errorf("new tokens: key ID %q is not 1-64 characters of [A-Za-z0-9_.-]", k.ID)
		}
		seen[k.ID] = true
		t.keys = append(t.keys, Key{ID: k.ID, Secret: append([]byte(nil), k.Secret...)})
	}
	if t.now == nil {
		t.now = time.Now
	}
	return t, nil
}

// ValidKeyID reports whether id is 1–64 characters of [A-Za-z0-9_.-].
func ValidKeyID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// SigningKeyID is the ID of the key that signs (empty: none).
func (t *Tokens) SigningKeyID() string { return t.keys[0].ID }

// Mint returns a token for player acting as role, valid for ttl, and when
// it expires. The token carries no session ("sid").
func (t *Tokens) Mint(player string, role Role, ttl time.Duration) (string, time.Time, error) {
	return t.MintSession(player, role, "", ttl)
}

// MintSession is Mint with the session sid written into the "sid" claim
// (none when sid is empty), so that revoking the session refuses the token.
func (t *Tokens) MintSession(player string, role Role, sid string, ttl time.Duration) (string, time.Time, error) {
	switch {
	case !ValidPlayerID(player):
		return "", time.Time{}, fmt.Errorf("mint token: player %q is not 1-64 characters of [A-Za-z0-9_-]", player)
	case !role.Valid():
		return "", time.Time{}, fmt.Errorf("mint token: role %q is not player, admin or system", role)
	case ttl <= 0:
		return "", time.Time{}, fmt.Errorf("mint token: ttl %s is not positive", ttl)
	}
	now := t.now().UTC().Truncate(time.Second)
	exp := now.Add(ttl)
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   player,
			Issuer:    t.issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		Role:      role,
		SessionID: sid,
	}
	if t.audience != "" {
		claims.Audience = jwt.ClaimStrings{t.audience}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	signer := t.keys[0]
	if signer.ID != "" {
		tok.Header["kid"] = signer.ID
	}
	s, err := tok.SignedString(signer.Secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("mint token for %s: %w", player, err)
	}
	return s, exp, nil
}

// leeway tolerates clock skew between the minting and the verifying host.
const leeway = 5 * time.Second

// Verify checks token and returns its principal, or an error wrapping
// ErrUnauthorized that says why. It needs no I/O; ctx is for Verifier.
func (t *Tokens) Verify(_ context.Context, token string) (Principal, error) {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(t.now),
	}
	if t.issuer != "" {
		opts = append(opts, jwt.WithIssuer(t.issuer))
	}
	if t.audience != "" {
		opts = append(opts, jwt.WithAudience(t.audience))
	}
	var claims Claims
	_, err := jwt.ParseWithClaims(token, &claims, t.key, opts...)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrUnauthorized, err)
	}
	return Principal{PlayerID: claims.Subject, Role: claims.Role, SessionID: claims.SessionID, ExpiresAt: claims.ExpiresAt.Time}, nil
}

// key returns the secret of the token's "kid" (none: the key without an
// ID), for the parser, which has checked the algorithm first.
func (t *Tokens) key(tok *jwt.Token) (any, error) {
	kid := ""
	if v, ok := tok.Header["kid"]; ok {
		s, ok := v.(string)
		if !ok {
			return nil, errors.New("kid is not a string")
		}
		kid = s
	}
	for _, k := range t.keys {
		if k.ID == kid {
			return k.Secret, nil
		}
	}
	return nil, fmt.Errorf("no key with ID %q", kid)
}

// SecretFileName is the file in the data directory that keeps the secret
// generated in dev mode.
const SecretFileName = "jwt-secret"

// LoadOrCreateSecret returns the secret kept in dir/jwt-secret, creating
// dir and the file (64 random bytes hex-encoded, mode 0600) when missing.
// The file appears whole or not at all (written aside, then linked into
// place), so several processes starting at once agree on one secret. A
// secret file readable by group or others is refused.
func LoadOrCreateSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, SecretFileName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", dir, err)
	}
	if _, err := os.Stat(path); err == nil {
		return readSecret(path)
	}
	raw := make([]byte, 64)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate JWT secret: %w", err)
	}
	secret := []byte(hex.EncodeToString(raw))
	tmp, err := os.CreateTemp(dir, SecretFileName+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create JWT secret in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create JWT secret in %s: %w", dir, err)
	}
	if _, err := tmp.Write(append(secret, '\n')); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write JWT secret in %s: %w", dir, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write JWT secret in %s: %w", dir, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return readSecret(path) // another process won the race
		}
		return nil, fmt.Errorf("create JWT secret %s: %w", path, err)
	}
	return secret, nil
}

func readSecret(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read JWT secret: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("read JWT secret %s: mode %04o lets others read it; chmod 600 it", path, info.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JWT secret %s: %w", path, err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < MinSecretLength {
		return nil, fmt.Errorf("read JWT secret %s: %d bytes, fewer than %d", path, len(b), MinSecretLength)
	}
	return b, nil
}

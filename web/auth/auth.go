// Package auth owns who may call the API: the roles (a closed set), the
// JWTs that carry them (HS256 only), the principal a request acts as, and
// the JWT secret kept in the data directory in dev mode.
//
// Contracts:
//   - Verify accepts only HS256 tokens signed with the configured secret,
//     with an "exp" in the future, an "nbf" (when present) in the past, the
//     configured issuer and audience (when configured), a "sub" that is a
//     valid player ID and a "role" of the closed set. Anything else is an
//     error wrapping ErrUnauthorized; the reason is for logs, not clients.
//   - Claim names ("sub", "role", "sid") are part of the HTTP contract
//     (docs/API.md): renaming one invalidates every token in circulation.
//   - Tokens is safe for concurrent use.
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

// Tokens mints and verifies HS256 tokens with one secret.
type Tokens struct {
	secret   []byte
	issuer   string
	audience string
	now      func() time.Time
}

// TokensConfig configures Tokens.
type TokensConfig struct {
	// Secret is the HS256 key, at least 32 bytes.
	Secret []byte
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
	if len(cfg.Secret) < MinSecretLength {
		return nil, fmt.Errorf("new tokens: secret is %d bytes, fewer than %d", len(cfg.Secret), MinSecretLength)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Tokens{secret: append([]byte(nil), cfg.Secret...), issuer: cfg.Issuer, audience: cfg.Audience, now: now}, nil
}

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
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("mint token for %s: %w", player, err)
	}
	return s, exp, nil
}

// leeway tolerates clock skew between the minting and the verifying host.
const leeway = 5 * time.Second

// Verify checks token and returns its principal, or an error wrapping
// ErrUnauthorized that says why.
func (t *Tokens) Verify(token string) (Principal, error) {
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
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return t.secret, nil }, opts...)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrUnauthorized, err)
	}
	return Principal{PlayerID: claims.Subject, Role: claims.Role, SessionID: claims.SessionID}, nil
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

package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	testSecret = []byte(strings.Repeat("s3cr3t-", 6))
	testNow    = time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC)
)

func newTestTokens(t *testing.T, issuer, audience string) *Tokens {
	t.Helper()
	tk, err := NewTokens(TokensConfig{Secret: testSecret, Issuer: issuer, Audience: audience, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func claims(sub string, role Role, mut func(*Claims)) Claims {
	c := Claims{RegisteredClaims: jwt.RegisteredClaims{
		Subject:   sub,
		IssuedAt:  jwt.NewNumericDate(testNow.Add(-time.Minute)),
		ExpiresAt: jwt.NewNumericDate(testNow.Add(time.Hour)),
	}, Role: role}
	if mut != nil {
		mut(&c)
	}
	return c
}

func sign(t *testing.T, method jwt.SigningMethod, key any, c Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// samePrincipal compares principals field by field, the expiry as an
// instant (a parsed token's time is local, the test's UTC).
func samePrincipal(a, b Principal) bool {
	return a.PlayerID == b.PlayerID && a.Role == b.Role && a.SessionID == b.SessionID && a.ExpiresAt.Equal(b.ExpiresAt)
}

func TestVerify(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		issuer   string
		audience string
		token    func(t *testing.T) string
		want     Principal
		wantErr  string
	}{
		{name: "valid player", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, testSecret, claims("alice", RolePlayer, nil))
		}, want: Principal{PlayerID: "alice", Role: RolePlayer, ExpiresAt: testNow.Add(time.Hour)}},
		{name: "valid admin with session", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, testSecret, claims("root", RoleAdmin, func(c *Claims) { c.SessionID = "s1" }))
		}, want: Principal{PlayerID: "root", Role: RoleAdmin, SessionID: "s1", ExpiresAt: testNow.Add(time.Hour)}},
		{name: "bad signature", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 40)), claims("alice", RolePlayer, nil))
		}, wantErr: "signature"},
		{name: "alg none", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("alice", RolePlayer, nil))
		}, wantErr: "signing method"},
		{name: "HS384 with the right secret", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS384, testSecret, claims("alice", RolePlayer, nil))
		}, wantErr: "signing method"},
		{name: "RS256", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey, claims("alice", RolePlayer, nil))
		}, wantErr: "signing method"},
		{name: "expired", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, testSecret, claims("alice", RolePlayer, func(c *Claims) {
				c.ExpiresAt = jwt.NewNumericDate(testNow.Add(-time.Minute))
			}))
		}, wantErr: "expired"},
		{name: "no exp", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, testSecret, claims("alice", RolePlayer, func(c *Claims) { c.ExpiresAt = nil }))
		}, wantErr: "exp"},
		{name: "not valid yet", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, testSecret, claims("alice", RolePlayer, func(c *Claims) {
				c.NotBefore = jwt.NewNumericDate(testNow.Add(time.Minute))
			}))
		}, wantErr: "not valid yet"},
		{name: "unknown role", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, testSecret, claims("alice", "root", nil))
		}, wantErr: "role"},
		{name: "bad subject", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, testSecret, claims("al ice", RolePlayer, nil))
		}, wantErr: "sub"},
		{name: "wrong issuer", issuer: "https://issuer.example", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, testSecret, claims("alice", RolePlayer, func(c *Claims) { c.Issuer = "https://evil.example" }))
		}, wantErr: "issuer"},
		{name: "right issuer", issuer: "https://issuer.example", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, testSecret, claims("alice", RolePlayer, func(c *Claims) { c.Issuer = "https://issuer.example" }))
		}, want: Principal{PlayerID: "alice", Role: RolePlayer, ExpiresAt: testNow.Add(time.Hour)}},
		{name: "wrong audience", audience: "taskqueue", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, testSecret, claims("alice", RolePlayer, func(c *Claims) { c.Audience = jwt.ClaimStrings{"other"} }))
		}, wantErr: "audience"},
		{name: "malformed", token: func(*testing.T) string { return "not.a.jwt" }, wantErr: "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tk := newTestTokens(t, tc.issuer, tc.audience)
			got, err := tk.Verify(context.Background(), tc.token(t))
			if tc.wantErr != "" {
				if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Verify error = %v, want ErrUnauthorized mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !samePrincipal(got, tc.want) {
				t.Fatalf("Verify = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestMintRoundTrip(t *testing.T) {
	tk := newTestTokens(t, "iss", "aud")
	tok, exp, err := tk.Mint("bob", RoleSystem, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(testNow.Add(2 * time.Hour)) {
		t.Fatalf("expiry %s", exp)
	}
	p, err := tk.Verify(context.Background(), tok)
	if err != nil || !samePrincipal(p, Principal{PlayerID: "bob", Role: RoleSystem, ExpiresAt: exp}) {
		t.Fatalf("Verify(Mint) = %+v, %v", p, err)
	}
	if _, _, err := tk.Mint("", RolePlayer, time.Hour); err == nil {
		t.Fatal("Mint accepted an empty player")
	}
	if _, _, err := tk.Mint("bob", "god", time.Hour); err == nil {
		t.Fatal("Mint accepted an unknown role")
	}
	if _, err := NewTokens(TokensConfig{Secret: []byte("short")}); err == nil {
		t.Fatal("NewTokens accepted a short secret")
	}
}

func TestCanActOn(t *testing.T) {
	for _, tc := range []struct {
		p      Principal
		target string
		want   bool
	}{
		{Principal{PlayerID: "alice", Role: RolePlayer}, "alice", true},
		{Principal{PlayerID: "alice", Role: RolePlayer}, "bob", false},
		{Principal{PlayerID: "root", Role: RoleAdmin}, "bob", true},
		{Principal{PlayerID: "proc", Role: RoleSystem}, "bob", true},
		{Principal{PlayerID: "x", Role: Role("guest")}, "x", false},
	} {
		if got := tc.p.CanActOn(tc.target); got != tc.want {
			t.Errorf("%+v.CanActOn(%s) = %v", tc.p, tc.target, got)
		}
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var wg sync.WaitGroup
	secrets := make([][]byte, 8)
	errs := make([]error, 8)
	for i := range secrets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			secrets[i], errs[i] = LoadOrCreateSecret(dir)
		}()
	}
	wg.Wait()
	for i := range secrets {
		if errs[i] != nil {
			t.Fatalf("LoadOrCreateSecret: %v", errs[i])
		}
		if string(secrets[i]) != string(secrets[0]) || len(secrets[i]) < MinSecretLength {
			t.Fatalf("concurrent starts disagree on the secret")
		}
	}
	info, err := os.Stat(filepath.Join(dir, SecretFileName))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode = %v, %v; want 0600", info.Mode().Perm(), err)
	}
	again, err := LoadOrCreateSecret(dir)
	if err != nil || string(again) != string(secrets[0]) {
		t.Fatalf("second start read another secret: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("data directory holds %d files, want only the secret", len(entries))
	}
	if err := os.Chmod(filepath.Join(dir, SecretFileName), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSecret(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable secret was accepted: %v", err)
	}
}

func TestMintSessionCarriesSID(t *testing.T) {
	tk := newTestTokens(t, "", "")
	tok, exp, err := tk.MintSession("bob", RolePlayer, "s-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tk.Verify(context.Background(), tok)
	if err != nil || !samePrincipal(p, Principal{PlayerID: "bob", Role: RolePlayer, SessionID: "s-1", ExpiresAt: exp}) {
		t.Fatalf("Verify(MintSession) = %+v, %v", p, err)
	}
}

// TestKeyRotation: the first key signs with its ID in "kid", every key
// verifies, a token without a kid needs the key without an ID, and a key
// dropped after the overlap refuses the tokens it signed.
func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	oldSecret, newSecret := []byte(strings.Repeat("old-", 8)), []byte(strings.Repeat("new-", 8))
	mk := func(keys ...Key) *Tokens {
		tk, err := NewTokens(TokensConfig{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	legacy := mk(Key{Secret: oldSecret})       // before key IDs: TASKQUEUE_JWT_SECRET alone
	v1 := mk(Key{ID: "k1", Secret: oldSecret}) // TASKQUEUE_JWT_SECRETS=k1:…
	overlap := mk(Key{ID: "k2", Secret: newSecret}, Key{ID: "k1", Secret: oldSecret}, Key{Secret: oldSecret})
	after := mk(Key{ID: "k2", Secret: newSecret})

	mint := func(tk *Tokens) string {
		s, _, err := tk.Mint("alice", RolePlayer, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	legacyTok, v1Tok, overlapTok := mint(legacy), mint(v1), mint(overlap)
	if tok, _, _ := jwt.NewParser().ParseUnverified(overlapTok, jwt.MapClaims{}); tok.Header["kid"] != "k2" {
		t.Fatalf("minted with kid %v, want k2 (the first key)", tok.Header["kid"])
	}
	cases := []struct {
		name  string
		tk    *Tokens
		token string
		ok    bool
	}{
		{"overlap accepts the new key's token", overlap, overlapTok, true},
		{"overlap accepts the old key's token", overlap, v1Tok, true},
		{"overlap accepts a token without kid", overlap, legacyTok, true},
		{"after the overlap, the new key's token", after, overlapTok, true},
		{"after the overlap, the old key's token", after, v1Tok, false},
		{"after the overlap, a token without kid", after, legacyTok, false},
		{"the old key refuses the new key's token", v1, overlapTok, false},
		{"a token without kid needs a key without ID", v1, legacyTok, false},
	}
	for _, tc := range cases {
		_, err := tc.tk.Verify(ctx, tc.token)
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: %v, want ErrUnauthorized", tc.name, err)
		}
	}
	// A token naming k1 but signed with another secret is refused.
	forged := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("alice", RolePlayer, func(c *Claims) {
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour)) // valid but for the signature
	}))
	forged.Header["kid"] = "k1"
	s, err := forged.SignedString(newSecret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := overlap.Verify(ctx, s); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("kid k1 signed with k2's secret: %v, want ErrUnauthorized", err)
	}
	for _, bad := range [][]Key{{{ID: "a", Secret: oldSecret}, {ID: "a", Secret: newSecret}}, {{ID: "bad kid", Secret: oldSecret}}, {{ID: "k", Secret: []byte("short")}}} {
		if _, err := NewTokens(TokensConfig{Keys: bad}); err == nil {
			t.Errorf("NewTokens accepted %v", bad)
		}
	}
}

package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Without Redis, sessions are kept in the database: a token minted before
// a restart is still accepted after it, refreshes, and a logout on one
// start holds on the next.
func TestSessionsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	dev := true
	cfg := Config{DataDir: dir, Dev: &dev}
	start := func() (*httptest.Server, func()) {
		t.Helper()
		a, cleanup, err := NewWithLog(context.Background(), cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(a.Handler)
		return srv, func() { srv.Close(); cleanup() }
	}
	call := func(srv *httptest.Server, method, path, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	token := func(status int, body string) string {
		t.Helper()
		var v struct {
			Token string `json:"token"`
		}
		if status != 200 || json.Unmarshal([]byte(body), &v) != nil || v.Token == "" {
			t.Fatalf("no token: %d %s", status, body)
		}
		return v.Token
	}

	srv, stop := start()
	alice := token(call(srv, "POST", "/api/auth/dev-token", "", `{"player":"alice"}`))
	bob := token(call(srv, "POST", "/api/auth/dev-token", "", `{"player":"bob"}`))
	if code, body := call(srv, "GET", "/api/queue/alice", alice, ""); code != 200 {
		t.Fatalf("before the restart: %d %s", code, body)
	}
	if code, body := call(srv, "POST", "/api/auth/logout", bob, ""); code != 204 {
		t.Fatalf("logout: %d %s", code, body)
	}
	stop()

	srv, stop = start()
	defer stop()
	if code, body := call(srv, "GET", "/api/queue/alice", alice, ""); code != 200 {
		t.Fatalf("alice's token after the restart: %d %s; want her session kept", code, body)
	}
	refreshed := token(call(srv, "POST", "/api/auth/refresh", alice, ""))
	if code, body := call(srv, "GET", "/api/queue/alice", refreshed, ""); code != 200 {
		t.Fatalf("the refreshed token: %d %s", code, body)
	}
	if code, body := call(srv, "GET", "/api/queue/bob", bob, ""); code != 401 {
		t.Fatalf("bob logged out before the restart, after it: %d %s; want 401", code, body)
	}
}

// Package deploy_test checks what a deployment relies on: /readyz turns
// not-ready when PostgreSQL goes away and ready again when it is back, so
// compose (and any orchestrator) routes around an instance that cannot
// serve. The "outage" is a TCP proxy between the app and the shared
// PostgreSQL server being closed and reopened: the server itself is shared
// by every test and is never stopped.
package deploy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

func TestReadyzFollowsPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for reconnections")
	}
	var p *testenv.TCPProxy
	a := apptest.Postgres(t, func(cfg *app.Config) {
		cfg.DatabaseURL, p = testenv.ProxyPostgres(t, cfg.DatabaseURL)
	})
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)

	waitReady := func(want int, what string) string {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			resp, err := http.Get(srv.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /readyz still %d %s", what, resp.StatusCode, b)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitReady(http.StatusOK, "at start")
	if resp, err := http.Get(srv.URL + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %v %v", resp, err)
	}

	p.Stop()
	body := waitReady(http.StatusServiceUnavailable, "PostgreSQL stopped")
	if !strings.Contains(body, "store") {
		t.Errorf("not-ready body does not name the store: %s", body)
	}
	// Alive all the same: an orchestrator must not kill it for the outage.
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz during the outage: %v %v", resp, err)
	}
	resp.Body.Close()

	p.Start(t)
	waitReady(http.StatusOK, "PostgreSQL back")
}

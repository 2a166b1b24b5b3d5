package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"
)

// TestReadyzNamesEachDependency: /readyz (Readiness) names every check with its
// state, is 503 with Retry-After when a required one fails, stays 200
// when only an optional one does, and answers within its deadline even
// when a check ignores its context.
func TestReadyzNamesEachDependency(t *testing.T) {
	stuck := make(chan struct{})
	defer close(stuck)
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	hangs := func(context.Context) error { <-stuck; return nil }
	cases := []struct {
		name   string
		checks []ReadinessCheck
		status int
		want   map[string]string
	}{
		{"all ok", []ReadinessCheck{{Name: "store", Check: ok}, {Name: "redis", Check: ok, Optional: true}},
			200, map[string]string{"store": "ok", "redis": "ok"}},
		{"optional down", []ReadinessCheck{{Name: "store", Check: ok}, {Name: "redis", Check: down, Optional: true}},
			200, map[string]string{"store": "ok", "redis": "degraded: connection refused"}},
		{"required down", []ReadinessCheck{{Name: "store", Check: down}, {Name: "readModels", Check: ok}},
			503, map[string]string{"store": "connection refused", "readModels": "ok"}},
		{"a check hangs", []ReadinessCheck{{Name: "store", Check: hangs}, {Name: "readModels", Check: ok}},
			503, map[string]string{"store": "no answer within 200ms", "readModels": "ok"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			rd := readiness{checks: tc.checks, timeout: 200 * time.Millisecond, log: slog.New(slog.NewTextHandler(&logs, nil))}
			w := httptest.NewRecorder()
			start := time.Now()
			rd.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("/readyz took %s", took)
			}
			var body struct {
				Ready  bool              `json:"ready"`
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if w.Code != tc.status || body.Ready != (tc.status == 200) || len(body.Checks) != len(tc.want) {
				t.Fatalf("answered %d %s, want %d %v", w.Code, w.Body, tc.status, tc.want)
			}
			for k, v := range tc.want {
				if body.Checks[k] != v {
					t.Errorf("check %s = %q, want %q", k, body.Checks[k], v)
				}
			}
			if got := w.Header().Get("Retry-After"); (tc.status == 503) != (got == "1") {
				t.Errorf("Retry-After %q with status %d", got, w.Code)
			}
		})
	}
}

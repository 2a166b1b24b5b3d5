package web_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/auth"
)

// fuzzRoutes are the requests FuzzAPI sends: {seg} is the fuzzed path
// segment (escaped), the fuzzed query and body go with every one.
var fuzzRoutes = []struct {
	method, path string
	command      bool // writes to the queue of "fz"
}{
	{"POST", "/api/queue/fz/tasks", true},
	{"PUT", "/api/queue/fz/reorder", true},
	{"DELETE", "/api/queue/fz/tasks/{seg}", true},
	{"POST", "/api/queue/fz/stop", true},
	{"POST", "/api/queue/fz/start", true},
	{"GET", "/api/queue/fz", false},
	{"GET", "/api/queue/fz/history", false},
	{"GET", "/api/players/fz/progress", false},
	{"GET", "/api/analytics/{seg}", false},
	{"GET", "/api/admin/players/fz/events", false},
	{"GET", "/api/admin/players/fz/queue", false},
	{"GET", "/api/admin/projections/{seg}", false},
	{"POST", "/api/admin/deadletters/{seg}/retry", false},
	{"GET", "/api/queue/{seg}", false},
}

// FuzzAPI sends arbitrary paths, query strings and bodies to the API as
// an admin (who may do everything, so input checks, not authorization,
// decide) and checks the bar for bad input: every answer as the spec
// (api/openapi.yaml) documents it, never a 500 (a panic answers
// 500 through the recoverer), every error a problem+json document with
// its status, and a refused command writes nothing.
//
// `go test` runs the seeds below; `go test ./web -run '^$' -fuzz FuzzAPI
// -fuzztime 60s` explores further (SQLite, a fresh app per fuzz process).
func FuzzAPI(f *testing.F) {
	seeds := []struct {
		route       int
		seg, q, bod string
	}{
		{0, "", "", `{"type":"chop-wood","count":3}`},
		{0, "", "", `{"type":"chop-wood","count":0}`},
		{0, "", "", `{"type":"chop-wood","count":1e99,"position":-1}`},
		{0, "", "", `{"type":"no-such-task","count":1}`},
		{0, "", "", `{"type":"chop-wood","count":2,"position":99999999999999999999}`},
		{0, "", "", `{"type":"chop-wood","count":"2"}`},
		{0, "", "", `{"type":"chop-wood","count":2}{"x":1}`},
		{0, "", "", `[`},
		{0, "", "", "\xff\xfe"},
		{1, "", "", `{"order":["a","a"]}`},
		{1, "", "", `{"order":null}`},
		{1, "", "", `{"order":[1,2]}`},
		{2, "not-a-uuid", "", ""},
		{2, "00000000-0000-0000-0000-000000000000", "", ""},
		{2, "../../x", "", ""},
		{3, "", "", `{"unexpected":true}`},
		{5, "", "minVersion=-1", ""},
		{5, "", "minVersion=abc", ""},
		{5, "", "minVersion=1e3", ""},
		{6, "", "cursor=%%%", ""},
		{6, "", "cursor=eyJ4IjoxfQ&limit=100000", ""},
		{6, "", "from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z", ""},
		{6, "", "type=chop-wood&limit=-5", ""},
		{7, "", "", ""},
		{8, "completions", "from=yesterday", ""},
		{8, "no-such-report", "", ""},
		{8, "xp", "from=2026-11-01&to=2026-10-01&taskType=%00", ""},
		{9, "", "from=abc&type=" + strings.Repeat("x", 300), ""},
		{10, "", "at=not-a-time", ""},
		{10, "", "at=9999-12-31T23:59:59Z", ""},
		{11, "no-such-projection", "", ""},
		{12, "nope", "", ""},
		{13, "UPPER", "", ""},
		{13, strings.Repeat("p", 200), "", ""},
	}
	for _, s := range seeds {
		f.Add(s.route, s.seg, s.q, []byte(s.bod))
	}
	// No processor: it would complete repetitions beside the requests, and
	// a refused command must be seen to write nothing.
	off := false
	a := apptest.SQLite(f, func(c *app.Config) {
		c.RateLimitPlayer, c.RateLimitIP = -1, -1
		c.Processor = &off
	})
	token, _, err := a.Tokens.Mint("root", auth.RoleAdmin, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, route int, seg, query string, body []byte) {
		if route < 0 {
			route = -route
		}
		rt := fuzzRoutes[route%len(fuzzRoutes)]
		target := strings.ReplaceAll(rt.path, "{seg}", url.PathEscape(seg))
		if query != "" {
			target += "?" + query
		}
		req, err := http.NewRequest(rt.method, "http://taskqueue.test"+target, bytes.NewReader(body))
		if err != nil {
			t.Skip("not a request a client can send:", err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		before := fuzzVersion(t, a)
		rec := httptest.NewRecorder()
		a.Handler.ServeHTTP(rec, req)
		res := rec.Result()
		got, _ := io.ReadAll(res.Body)
		if err := contractViolation(req, res.StatusCode, res.Header, got); err != nil {
			t.Fatalf("contract (api/openapi.yaml): %v\nbody: %.2000s", err, got)
		}
		if res.StatusCode >= 500 {
			t.Fatalf("%s %s with %q: %d %s", rt.method, target, body, res.StatusCode, got)
		}
		if res.StatusCode >= 400 {
			if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("%s %s: %d with Content-Type %q, want problem+json: %s", rt.method, target, res.StatusCode, ct, got)
			}
			var p struct {
				Type   string `json:"type"`
				Status int    `json:"status"`
				Title  string `json:"title"`
			}
			if err := json.Unmarshal(got, &p); err != nil || p.Status != res.StatusCode || !strings.HasPrefix(p.Type, "urn:taskqueue:problem:") || p.Title == "" {
				t.Fatalf("%s %s: %d, not a problem document (%v): %s", rt.method, target, res.StatusCode, err, got)
			}
			if after := fuzzVersion(t, a); rt.command && after != before {
				t.Fatalf("%s %s with %q was refused (%d) but the queue went from v%d to v%d", rt.method, target, body, res.StatusCode, before, after)
			}
		}
	})
}

func fuzzVersion(t *testing.T, a *app.App) int64 {
	t.Helper()
	v, err := a.Store.StreamVersion(t.Context(), "queue-fz")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

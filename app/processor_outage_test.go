package app_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

// The processor's outages reach /metrics through the wiring (the metrics
// registry is its faults.Observer): while the Redis that carries its
// commands is down (a redis-server of the test's own, killed),
// taskqueue_component_degraded{component="processor redis"} is 1 and its
// transient errors are counted; once Redis is back the gauge is 0 again.
func TestProcessorOutageMetrics(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	a := apptest.SQLite(t, func(c *app.Config) { c.RedisURL = srv.URL() })
	scrape := func() string {
		rec := httptest.NewRecorder()
		a.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	const degraded = `taskqueue_component_degraded{component="processor redis"}`
	waitMetric := func(what string, cond func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			m := scrape()
			if cond(m) {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; /metrics:\n%s", what, grepLines(m, "taskqueue_component_degraded", "taskqueue_transient_errors_total"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	srv.Stop()
	m := waitMetric("the processor's Redis outage", func(m string) bool { return strings.Contains(m, degraded+" 1") })
	if !strings.Contains(m, `taskqueue_transient_errors_total{component="processor redis",kind="unavailable"}`) {
		t.Errorf("no transient errors counted for the processor's Redis:\n%s", grepLines(m, "taskqueue_transient_errors_total"))
	}
	srv.Start()
	waitMetric("the end of the outage", func(m string) bool { return strings.Contains(m, degraded+" 0") })
}

// grepLines returns the lines of s that start with one of prefixes.
func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, "\n")
}

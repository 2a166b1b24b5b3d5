package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/audit"
	"github.com/taskqueue/taskqueue/auth"
)

// Sign-ins, refusals and admin actions reach the audit trail with the
// principal and the client's address, and `taskqueue audit` finds them by
// time, player and action, on both SQL backends.
func TestAuditTrailAndCommand(t *testing.T) {
	for name, build := range map[string]func(testing.TB, ...apptest.Option) *app.App{"sqlite": apptest.SQLite, "postgres": apptest.Postgres} {
		t.Run(name, func(t *testing.T) {
			a := build(t, func(c *app.Config) { c.AdminAddr = "127.0.0.1:0" })
			ctx := context.Background()
			token := func(player string, role auth.Role) string {
				tok, _, err := a.Tokens.Mint(player, role, time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			alice, root := token("alice", auth.RolePlayer), token("root", auth.RoleAdmin)
			call := func(method, path, tok, from string) int {
				req := httptest.NewRequest(method, path, nil)
				req.RemoteAddr = from
				if tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				rec := httptest.NewRecorder()
				a.Handler.ServeHTTP(rec, req)
				return rec.Code
			}
			for _, c := range []struct {
				method, path, tok, from string
				want                    int
			}{
				{"GET", "/api/queue/bob", alice, "198.51.100.7:4000", http.StatusForbidden},
				{"GET", "/api/queue/alice", "", "198.51.100.8:4000", http.StatusUnauthorized},
				{"GET", "/api/admin/projections", alice, "198.51.100.7:4000", http.StatusForbidden},
				{"GET", "/api/admin/players/alice/events", root, "203.0.113.1:5000", http.StatusOK},
				{"POST", "/api/admin/projections/queues/rebuild", root, "203.0.113.1:5000", http.StatusAccepted},
			} {
				if got := call(c.method, c.path, c.tok, c.from); got != c.want {
					t.Fatalf("%s %s: %d, want %d", c.method, c.path, got, c.want)
				}
			}
			if err := a.Audit.Flush(ctx); err != nil {
				t.Fatal(err)
			}

			env := map[string]string{"TASKQUEUE_DATA_DIR": a.Config.DataDir, "TASKQUEUE_DATABASE_URL": a.Config.DatabaseURL}
			entries := func(args ...string) []audit.Entry {
				t.Helper()
				code, stdout, stderr := runCLI(t, env, append([]string{"audit"}, args...)...)
				if code != 0 {
					t.Fatalf("taskqueue audit %v: exit %d: %s", args, code, stderr)
				}
				var out []audit.Entry
				sc := bufio.NewScanner(strings.NewReader(stdout))
				for sc.Scan() {
					var e audit.Entry
					if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
						t.Fatalf("line %q: %v", sc.Text(), err)
					}
					out = append(out, e)
				}
				return out
			}
			summary := func(es []audit.Entry) string {
				var s []string
				for _, e := range es {
					s = append(s, string(e.Action)+" "+e.Principal+"/"+e.Role+" "+e.Remote+" "+e.Target)
				}
				return strings.Join(s, "\n")
			}
			refused := entries("--since", "1h", "--action", "auth.refused")
			want := "auth.refused alice/player 198.51.100.7:4000 GET /api/queue/bob\n" +
				"auth.refused / 198.51.100.8:4000 GET /api/queue/alice\n" +
				"auth.refused alice/player 198.51.100.7:4000 GET /api/admin/projections"
			if got := summary(refused); got != want {
				t.Errorf("refusals:\n%s\nwant:\n%s", got, want)
			}
			if refused[0].Status != http.StatusForbidden || !strings.Contains(refused[0].Detail, "may not act on the queue of bob") {
				t.Errorf("refusal: %+v", refused[0])
			}
			admin := entries("--since", "1h", "--player", "root")
			want = "admin.event-read root/admin 203.0.113.1:5000 alice\nadmin.rebuild root/admin 203.0.113.1:5000 queues"
			if got := summary(admin); got != want {
				t.Errorf("root's entries:\n%s\nwant:\n%s", got, want)
			}
			// Reading the trail was recorded too.
			if got := entries("--action", "admin.audit-read"); len(got) != 2 || got[0].Principal != "operator" {
				t.Errorf("audit reads: %+v", got)
			}
			if code, _, _ := runCLI(t, env, "audit", "--action", "nope"); code != exitUsage {
				t.Errorf("--action nope: exit %d, want %d", code, exitUsage)
			}

			// With TASKQUEUE_ADMIN_ADDR the public handler serves no
			// metrics; the admin one does.
			if got := call("GET", "/metrics", "", "198.51.100.7:4000"); got != http.StatusNotFound {
				t.Errorf("GET /metrics on the public listener: %d, want 404", got)
			}
			rec := httptest.NewRecorder()
			a.AdminHandler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "taskqueue_") {
				t.Errorf("GET /metrics on the admin listener: %d", rec.Code)
			}
		})
	}
}

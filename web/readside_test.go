package web_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/web/auth"
)

// waitFor polls get until done accepts its body, for up to 60 s.
func waitForResponse(t *testing.T, what string, get func() response, done func(response) bool) response {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := get()
		if done(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not seen within 60 s: %d %s", what, r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type progressBody struct {
	PlayerID string `json:"playerId"`
	Skills   map[string]struct {
		XP    int64 `json:"xp"`
		Level int   `json:"level"`
	} `json:"skills"`
	Inventory  map[string]int64 `json:"inventory"`
	TotalXP    int64            `json:"totalXp"`
	TotalLevel int              `json:"totalLevel"`
	Version    int64            `json:"version"`
}

func decodeInto[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

// TestProgressAndAnalytics: a task the processor completes shows in the
// player's progress (own or admin; 403 for another player) and in the
// admin-only analytics reports; bad parameters are validation problems
// naming the field, an unknown report is not-found.
func TestProgressAndAnalytics(t *testing.T) {
	backends(t, func(t *testing.T, build func(*testing.T, ...apptest.Option) *app.App) {
		c := newClient(t, build(t))
		alice, root := c.token("alice", auth.RolePlayer), c.token("root", auth.RoleAdmin)
		bob, proc := c.token("bob", auth.RolePlayer), c.token("proc", auth.RoleSystem)

		r := c.do(req{method: "GET", path: "/api/players/alice/progress", token: alice})
		if r.status != 200 {
			t.Fatalf("progress before any event: %d %s", r.status, r.body)
		}
		if p := decodeInto[progressBody](t, r); p.PlayerID != "alice" || len(p.Skills) != 0 || len(p.Inventory) != 0 || p.Version != 0 {
			t.Fatalf("progress before any event: %s", r.body)
		}
		c.do(req{method: "GET", path: "/api/players/alice/progress", token: bob}).problem(t, 403, "forbidden")
		c.do(req{method: "GET", path: "/api/players/alice/progress"}).problem(t, 401, "unauthorized")
		c.do(req{method: "GET", path: "/api/players/not%20a%20player/progress", token: root}).problem(t, 400, "validation")

		if r := c.do(req{method: "POST", path: "/api/queue/alice/tasks", token: alice, body: `{"type":"catch-shrimp","count":1}`}); r.status != 201 {
			t.Fatalf("enqueue: %d %s", r.status, r.body)
		}
		for _, tok := range []string{alice, root, proc} {
			r := waitForResponse(t, "the completed task in the progress", func() response {
				return c.do(req{method: "GET", path: "/api/players/alice/progress", token: tok})
			}, func(r response) bool {
				if r.status != 200 {
					t.Fatalf("progress: %d %s", r.status, r.body)
				}
				return decodeInto[progressBody](t, r).Inventory["raw-shrimp"] == 1
			})
			p := decodeInto[progressBody](t, r)
			if p.Skills["fishing"].XP != 8 || p.Skills["fishing"].Level < 1 || p.TotalXP != 8 || p.Version == 0 {
				t.Fatalf("progress after the completion: %s", r.body)
			}
		}

		from := time.Now().UTC().Add(-24 * time.Hour).Format(time.RFC3339)
		r = waitForResponse(t, "the completion in task-daily", func() response {
			return c.do(req{method: "GET", path: "/api/analytics/task-daily?taskType=catch-shrimp&from=" + from, token: root})
		}, func(r response) bool {
			if r.status != 200 {
				t.Fatalf("task-daily: %d %s", r.status, r.body)
			}
			rep := decodeInto[struct {
				Report   string `json:"report"`
				TaskDays []struct {
					TaskType    string `json:"taskType"`
					Completions int64  `json:"completions"`
				} `json:"taskDays"`
			}](t, r)
			if rep.Report != "task-daily" {
				t.Fatalf("task-daily answers %s", r.body)
			}
			for _, d := range rep.TaskDays {
				if d.TaskType != "catch-shrimp" {
					t.Fatalf("task-daily filtered on catch-shrimp has %s", r.body)
				}
			}
			return len(rep.TaskDays) == 1 && rep.TaskDays[0].Completions == 1
		})
		r = waitForResponse(t, "the fishing XP in grants-daily", func() response {
			return c.do(req{method: "GET", path: "/api/analytics/grants-daily", token: root})
		}, func(r response) bool {
			if r.status != 200 {
				t.Fatalf("grants-daily: %d %s", r.status, r.body)
			}
			rep := decodeInto[struct {
				GrantDays []struct {
					Kind   string `json:"kind"`
					Name   string `json:"name"`
					Amount int64  `json:"amount"`
				} `json:"grantDays"`
			}](t, r)
			for _, g := range rep.GrantDays {
				if g.Kind == "xp" && g.Name == "fishing" && g.Amount == 8 {
					return true
				}
			}
			return false
		})
		for _, report := range []string{"active-players-hourly", "queue-lengths"} {
			r := c.do(req{method: "GET", path: "/api/analytics/" + report, token: root})
			if r.status != 200 || r.json(t)["report"] != report {
				t.Fatalf("%s: %d %s", report, r.status, r.body)
			}
		}

		// queue-lengths is the distribution now: it says when, and takes no range.
		ql := c.do(req{method: "GET", path: "/api/analytics/queue-lengths", token: root}).json(t)
		if at, ok := ql["at"].(string); !ok || at == "" || ql["from"] != nil || ql["to"] != nil {
			t.Fatalf("queue-lengths: %v; want an \"at\" and no from/to", ql)
		}
		for field, q := range map[string]string{"from": "from=2026-11-01T00:00:00Z", "to": "to=2026-11-01T00:00:00Z", "taskType": "taskType=chop-wood"} {
			p := c.do(req{method: "GET", path: "/api/analytics/queue-lengths?" + q, token: root}).problem(t, 400, "validation")
			if p["field"] != field {
				t.Fatalf("queue-lengths?%s: problem names field %v, want %s", q, p["field"], field)
			}
		}
		c.do(req{method: "GET", path: "/api/analytics/nope", token: root}).problem(t, 404, "not-found")
		for field, q := range map[string]string{
			"from":     "from=yesterday",
			"to":       "to=2026-13-01",
			"taskType": "taskType=Not%20A%20Type!",
		} {
			p := c.do(req{method: "GET", path: "/api/analytics/task-daily?" + q, token: root}).problem(t, 400, "validation")
			if p["field"] != field {
				t.Fatalf("?%s: problem names field %v, want %s", q, p["field"], field)
			}
		}
		p := c.do(req{method: "GET", path: "/api/analytics/task-daily?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", token: root}).problem(t, 400, "validation")
		if p["field"] != "from" {
			t.Fatalf("from after to names field %v", p["field"])
		}
		c.do(req{method: "GET", path: "/api/analytics/task-daily", token: alice}).problem(t, 403, "forbidden")
		c.do(req{method: "GET", path: "/api/analytics/task-daily", token: proc}).problem(t, 403, "forbidden")
		c.do(req{method: "GET", path: "/api/analytics/task-daily"}).problem(t, 401, "unauthorized")
	})
}

// TestDeadLettersAdmin: the processor's dead letter queue over HTTP is
// admin only; with nothing failed the list is empty, a retry of an
// unknown ID is not-found and bad parameters are validation problems.
func TestDeadLettersAdmin(t *testing.T) {
	backends(t, func(t *testing.T, build func(*testing.T, ...apptest.Option) *app.App) {
		c := newClient(t, build(t))
		alice, root := c.token("alice", auth.RolePlayer), c.token("root", auth.RoleAdmin)
		for _, path := range []string{"/api/admin/deadletters", "/api/admin/deadletters?all=true"} {
			r := c.do(req{method: "GET", path: path, token: root})
			if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("%s: %d %s", path, r.status, r.body)
			}
			body := decodeInto[struct {
				DeadLetters []map[string]any `json:"deadLetters"`
			}](t, r)
			if body.DeadLetters == nil || len(body.DeadLetters) != 0 {
				t.Fatalf("%s: want an empty list, got %s", path, r.body)
			}
		}
		c.do(req{method: "GET", path: "/api/admin/deadletters", token: alice}).problem(t, 403, "forbidden")
		c.do(req{method: "POST", path: "/api/admin/deadletters/x/retry", token: alice}).problem(t, 403, "forbidden")
		c.do(req{method: "GET", path: "/api/admin/deadletters"}).problem(t, 401, "unauthorized")
		c.do(req{method: "POST", path: "/api/admin/deadletters/no-such-id/retry", token: root}).problem(t, 404, "not-found")
		for field, q := range map[string]string{"all": "all=maybe", "limit": "limit=0"} {
			p := c.do(req{method: "GET", path: "/api/admin/deadletters?" + q, token: root}).problem(t, 400, "validation")
			if p["field"] != field {
				t.Fatalf("?%s: problem names field %v, want %s", q, p["field"], field)
			}
		}
	})
}

// TestDeadLettersListedOverHTTP: rows in the processor's dead letter table
// (written here with SQL, the same columns the processor's poison queue
// writes, since a command cannot be made to fail through HTTP) are listed
// newest first with their fields; retried ones only with ?all=true.
func TestDeadLettersListedOverHTTP(t *testing.T) {
	var url string
	a := apptest.Postgres(t, func(c *app.Config) { url = c.DatabaseURL })
	c := newClient(t, a)
	root := c.token("root", auth.RoleAdmin)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	failed := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, row := range []struct {
		id      string
		at      time.Time
		retried any
	}{{"dl-old", failed, failed.Add(time.Minute)}, {"dl-new", failed.Add(time.Hour), nil}} {
		_, err := conn.Exec(t.Context(), `INSERT INTO processor_dead_letters
			(id, topic, command_name, payload, metadata, error, correlation_id, failed_at, retried_at, retries)
			VALUES ($1, 'tq.commands.CompleteRepetition.p0', 'CompleteRepetition', '{"TaskID":"t"}', '{}', 'boom', 'corr-1', $2, $3, 0)`,
			row.id, row.at, row.retried)
		if err != nil {
			t.Fatal(err)
		}
	}
	type page struct {
		DeadLetters []struct {
			ID            string          `json:"id"`
			Command       string          `json:"command"`
			Payload       json.RawMessage `json:"payload"`
			Error         string          `json:"error"`
			CorrelationID string          `json:"correlationId"`
			FailedAt      time.Time       `json:"failedAt"`
			RetriedAt     *time.Time      `json:"retriedAt"`
		} `json:"deadLetters"`
	}
	r := c.do(req{method: "GET", path: "/api/admin/deadletters", token: root})
	open := decodeInto[page](t, r)
	if r.status != 200 || len(open.DeadLetters) != 1 {
		t.Fatalf("open dead letters: %d %s", r.status, r.body)
	}
	d := open.DeadLetters[0]
	if d.ID != "dl-new" || d.Command != "CompleteRepetition" || string(d.Payload) != `{"TaskID":"t"}` || d.Error != "boom" ||
		d.CorrelationID != "corr-1" || !d.FailedAt.Equal(failed.Add(time.Hour)) || d.RetriedAt != nil {
		t.Fatalf("open dead letter: %s", r.body)
	}
	r = c.do(req{method: "GET", path: "/api/admin/deadletters?all=true", token: root})
	all := decodeInto[page](t, r)
	if r.status != 200 || len(all.DeadLetters) != 2 || all.DeadLetters[0].ID != "dl-new" || all.DeadLetters[1].ID != "dl-old" ||
		all.DeadLetters[1].RetriedAt == nil {
		t.Fatalf("all dead letters: %d %s", r.status, r.body)
	}
	r = c.do(req{method: "GET", path: "/api/admin/deadletters?all=true&limit=1", token: root})
	if one := decodeInto[page](t, r); r.status != 200 || len(one.DeadLetters) != 1 || one.DeadLetters[0].ID != "dl-new" {
		t.Fatalf("limit=1: %d %s", r.status, r.body)
	}
}

// TestDeadLetterRetryOverHTTP: a dead letter of a command that cannot
// succeed (a CompleteRepetition of an invalid player ID, written to the
// dead letter table with SQL as the poison queue writes it) is re-sent by
// POST .../retry to the running processor's command topic; it fails again
// and comes back as a new dead letter, while the first is marked retried.
func TestDeadLetterRetryOverHTTP(t *testing.T) {
	var url string
	a := apptest.Postgres(t, func(c *app.Config) { url = c.DatabaseURL })
	c := newClient(t, a)
	root := c.token("root", auth.RoleAdmin)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	payload, err := json.Marshal(&command.CompleteRepetition{
		Request: command.Request{PlayerID: "not a player id!", IdempotencyKey: "k-1", CorrelationID: "corr-9", Actor: "system"},
		TaskID:  "t", Number: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(t.Context(), `INSERT INTO processor_dead_letters
		(id, topic, command_name, payload, metadata, error, correlation_id, failed_at)
		VALUES ('dl-1', 'taskqueue.commands.CompleteRepetition.p0', 'CompleteRepetition', $1, '{"name":"CompleteRepetition"}', 'boom', 'corr-9', $2)`,
		string(payload), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.do(req{method: "POST", path: "/api/admin/deadletters/dl-1/retry", token: root}); r.status != 202 || r.json(t)["id"] != "dl-1" {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	type page struct {
		DeadLetters []struct {
			ID        string     `json:"id"`
			Error     string     `json:"error"`
			RetriedAt *time.Time `json:"retriedAt"`
		} `json:"deadLetters"`
	}
	r := waitForResponse(t, "the retried command's new dead letter", func() response {
		return c.do(req{method: "GET", path: "/api/admin/deadletters", token: root})
	}, func(r response) bool {
		p := decodeInto[page](t, r)
		return r.status == 200 && len(p.DeadLetters) == 1 && p.DeadLetters[0].ID != "dl-1"
	})
	if d := decodeInto[page](t, r).DeadLetters[0]; !strings.Contains(d.Error, "not a player id!") {
		t.Fatalf("the new dead letter: %s", r.body)
	}
	r = c.do(req{method: "GET", path: "/api/admin/deadletters?all=true", token: root})
	all := decodeInto[page](t, r)
	if len(all.DeadLetters) != 2 || all.DeadLetters[1].ID != "dl-1" || all.DeadLetters[1].RetriedAt == nil {
		t.Fatalf("all dead letters after the retry: %s", r.body)
	}
}

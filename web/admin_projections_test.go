package web_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/eventstore"
)

type projectionJSON struct {
	Name    string `json:"name"`
	State   string `json:"state"`
	Failure *struct {
		Position string `json:"position"`
		Error    string `json:"error"`
	} `json:"failure"`
}

func (c *client) projections(token string) map[string]projectionJSON {
	c.t.Helper()
	r := c.do(req{method: "GET", path: "/api/admin/projections", token: token})
	var body struct {
		Projections []projectionJSON `json:"projections"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || r.status != 200 {
		c.t.Fatalf("projections: %d %s", r.status, r.body)
	}
	out := map[string]projectionJSON{}
	for _, p := range body.Projections {
		out[p.Name] = p
	}
	return out
}

// Every projection the service runs, the processor's processor_schedule
// included, is listed and managed by the admin API: an event that every
// projection's code refuses fails each of them (after a second attempt);
// each failure is skipped through the API (204), after which all are
// live, and a second skip of the same event is a 409 with the reason.
func TestAdminManagesEveryProjection(t *testing.T) {
	backends(t, func(t *testing.T, build func(*testing.T, ...apptest.Option) *app.App) {
		a := build(t)
		c := newClient(t, a)
		root := c.token("root", auth.RoleAdmin)
		names := func(m map[string]projectionJSON) []string {
			var out []string
			for n := range m {
				out = append(out, n)
			}
			slices.Sort(out)
			return out
		}
		if got := names(c.projections(root)); !slices.Equal(got, []string{"analytics", "player_progress", "processor_schedule", "queues"}) {
			t.Fatalf("projections listed: %v", got)
		}

		// A RepetitionStarted whose payload no projection can decode.
		ar, err := a.Store.Append(t.Context(), "queue-mallory", eventstore.NoStream, eventstore.EventData{
			ID: uuid.New(), Type: "RepetitionStarted", SchemaVersion: 1, Data: []byte(`{"taskId":5,"number":"x"}`),
			Metadata: eventstore.Metadata{OccurredAt: time.Now()},
		})
		if err != nil {
			t.Fatal(err)
		}
		pos := ar.Position.String()
		var failed []string
		for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
			failed = failed[:0]
			for n, p := range c.projections(root) {
				if p.State == "failed" {
					if p.Failure == nil || p.Failure.Position != pos {
						t.Fatalf("%s failed on %+v, want the event at %s", n, p.Failure, pos)
					}
					failed = append(failed, n)
				}
			}
			if len(failed) == 4 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 3 minutes only %v failed on the malformed event at %s: %s", failed, pos, c.do(req{method: "GET", path: "/api/admin/projections", token: root}).body)
			}
		}
		for _, n := range failed {
			r := c.do(req{method: "POST", path: "/api/admin/projections/" + n + "/skip", token: root, body: `{"position":"` + pos + `"}`})
			if r.status != 204 {
				t.Fatalf("skip in %s: %d %s", n, r.status, r.body)
			}
		}
		for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
			ps := c.projections(root)
			live := 0
			for _, p := range ps {
				if p.State == "live" {
					live++
				}
			}
			if live == len(ps) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the skips: %+v", ps)
			}
		}
		p := c.do(req{method: "POST", path: "/api/admin/projections/processor_schedule/skip", token: root, body: `{"position":"` + pos + `"}`}).
			problem(t, 409, "conflict")
		if d, _ := p["detail"].(string); !strings.Contains(d, "has not failed on that event") {
			t.Fatalf("second skip: %v", p)
		}
		if r := c.do(req{method: "POST", path: "/api/admin/projections/processor_schedule/retry", token: root}); r.status != 202 {
			t.Fatalf("retry: %d %s", r.status, r.body)
		}
		c.do(req{method: "POST", path: "/api/admin/projections/nope/retry", token: root}).problem(t, 404, "not-found")
	})
}

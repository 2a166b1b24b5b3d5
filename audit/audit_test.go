package audit_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/audit"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/projections"
)

func databases(t *testing.T) map[string]projections.DB {
	_, pool := teststore.Postgres(t, "", 2)
	return map[string]projections.DB{
		"sqlite":   projections.NewSQLiteStoreDB(teststore.SQLite(t, "")),
		"postgres": projections.NewPostgresDB(pool),
	}
}

// What is recorded is logged at once and queryable by time, player and
// action; the table refuses changes and early deletes; the sweep removes
// what is past its retention.
func TestTrailRecordsQueriesAndSweeps(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var logs bytes.Buffer
			store := audit.NewStore(db)
			trail := audit.NewTrail(slog.New(slog.NewTextHandler(&logs, nil)), store)
			defer trail.Close()
			now := time.Now().UTC()
			old := now.Add(-72 * time.Hour)
			trail.Record(ctx, audit.Entry{At: old, Action: audit.SignIn, Principal: "alice", Role: "player", Remote: "192.0.2.1:0"})
			trail.Record(ctx, audit.Entry{Action: audit.Refused, Principal: "alice", Role: "player", Remote: "192.0.2.1:0", Target: "/api/queue/bob/", Status: 403, Detail: "alice may not act on the queue of bob"})
			trail.Record(ctx, audit.Entry{Action: audit.Rebuild, Principal: "root", Role: "admin", Target: "queues", Status: 202})
			trail.Record(ctx, audit.Entry{Action: audit.EventRead, Principal: "root", Role: "admin", Target: "bob", Status: 200})
			if err := trail.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(logs.String(), "component=audit") || !strings.Contains(logs.String(), "action=auth.refused") ||
				!strings.Contains(logs.String(), "remote=192.0.2.1:0") {
				t.Fatalf("log lines:\n%s", logs.String())
			}
			query := func(f audit.Filter) []string {
				t.Helper()
				got, err := store.Query(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, e := range got {
					out = append(out, string(e.Action)+":"+e.Principal+">"+e.Target)
				}
				return out
			}
			for _, c := range []struct {
				f    audit.Filter
				want string
			}{
				{audit.Filter{}, "auth.sign-in:alice> auth.refused:alice>/api/queue/bob/ admin.rebuild:root>queues admin.event-read:root>bob"},
				{audit.Filter{Since: now.Add(-time.Hour)}, "auth.refused:alice>/api/queue/bob/ admin.rebuild:root>queues admin.event-read:root>bob"},
				{audit.Filter{Player: "bob"}, "admin.event-read:root>bob"},
				{audit.Filter{Player: "alice", Action: audit.Refused}, "auth.refused:alice>/api/queue/bob/"},
				{audit.Filter{Limit: 1}, "admin.event-read:root>bob"},
			} {
				got := strings.Join(query(c.f), " ")
				if got != c.want {
					t.Errorf("query %+v = %s, want %s", c.f, got, c.want)
				}
			}

			// Append-only: no update, no delete of a fresh row.
			for _, q := range []string{`UPDATE audit_log SET principal = 'mallory'`, `DELETE FROM audit_log`} {
				err := db.InTx(ctx, func(tx projections.Tx) error { _, err := tx.Exec(ctx, q); return err })
				if err == nil {
					t.Errorf("%s was allowed", q)
				}
			}
			// The sweep deletes what is older than the retention only.
			n, err := store.Sweep(ctx, now, 48*time.Hour)
			if err != nil || n != 1 {
				t.Fatalf("sweep = %d, %v; want the one entry of 3 days ago", n, err)
			}
			if got := query(audit.Filter{}); len(got) != 3 {
				t.Fatalf("after the sweep: %v", got)
			}
		})
	}
}

func TestParseAction(t *testing.T) {
	if a, err := audit.ParseAction("admin.rebuild"); err != nil || a != audit.Rebuild {
		t.Fatalf("ParseAction(admin.rebuild) = %v, %v", a, err)
	}
	if _, err := audit.ParseAction("admin.nope"); err == nil || !strings.Contains(err.Error(), "auth.sign-in") {
		t.Fatalf("ParseAction(admin.nope) = %v", err)
	}
}

package app

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/processor"
	"github.com/taskqueue/taskqueue/projections"
)

// fastCatalog writes the embedded catalog with every task's duration cut
// to 20 ms, so the processor completes repetitions within the test.
func fastCatalog(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../domain/catalog.json")
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	for _, task := range c["tasks"].([]any) {
		task.(map[string]any)["baseDurationMs"] = 20
	}
	path := filepath.Join(t.TempDir(), "catalog.json")
	b, _ = json.Marshal(c)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// forgetClient calls the app's HTTP API.
type forgetClient struct {
	t   *testing.T
	srv *httptest.Server
}

func (c forgetClient) call(method, path, token, body string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func (c forgetClient) token(player, role string) string {
	c.t.Helper()
	code, body := c.call("POST", "/api/auth/dev-token", "", fmt.Sprintf(`{"player":%q,"role":%q}`, player, role))
	var v struct {
		Token string `json:"token"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &v) != nil || v.Token == "" {
		c.t.Fatalf("dev token of %s: %d %s", player, code, body)
	}
	return v.Token
}

// rowsOf returns every row of table as text, sorted.
func rowsOf(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT * FROM ` + table)
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i, v := range vals {
			if bs, ok := v.([]byte); ok {
				v = string(bs)
			}
			if tm, ok := v.(time.Time); ok {
				v = tm.UTC().Format(time.RFC3339Nano)
			}
			fmt.Fprintf(&b, "%s=%v|", cols[i], v)
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// readModelViews are the views every read model is read through.
var readModelViews = []string{"queue_status", "task_history", "player_progress", "analytics_task_daily",
	"analytics_grants_daily", "analytics_active_players_hourly", "analytics_queue_lengths", "processor_schedule"}

func dumpReadModels(t *testing.T, db *sql.DB) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, v := range readModelViews {
		out[v] = rowsOf(t, db, v)
	}
	return out
}

// tablesHolding lists the tables (and views) of the database whose rows
// mention s anywhere, but for audit_log (the trail keeps who was forgotten)
// and the outbox of player.forgotten (its message names the player for the
// consumers): the analyst role can read neither.
func tablesHolding(t *testing.T, db *sql.DB, postgres bool, s string) []string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type IN ('table', 'view')`
	if postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	var found []string
	for _, table := range tables {
		if table == "audit_log" || strings.HasPrefix(table, "sqlite_") || strings.HasSuffix(table, "."+processor.TypePlayerForgotten) {
			continue
		}
		for _, r := range rowsOf(t, db, `"`+table+`"`) {
			if strings.Contains(r, s) {
				found = append(found, table+": "+r)
			}
		}
	}
	return found
}

// rebuildAll rebuilds every projection of the runners blue-green and waits
// for the switches.
func rebuildAll(t *testing.T, ctx context.Context, runners ...*projections.Runner) {
	t.Helper()
	for _, r := range runners {
		for _, name := range r.Names() {
			gen, err := r.Rebuild(ctx, name)
			if err != nil {
				t.Fatalf("rebuild %s: %v", name, err)
			}
			if err := r.WaitRebuilt(ctx, name, gen, 50*time.Millisecond, nil); err != nil {
				t.Fatalf("wait for the rebuild of %s: %v", name, err)
			}
		}
	}
}

// withoutServerTime drops the serverTime of a queue's JSON (it is the
// clock's at the answer).
func withoutServerTime(body string) string {
	if i := strings.Index(body, `,"serverTime"`); i >= 0 {
		return body[:i]
	}
	return body
}

// watermillMessage is what subscribeForgotten hands on.
type watermillMessage struct{ payload []byte }

// subscribeForgotten reads player.forgotten from the PostgreSQL outbox.
func subscribeForgotten(t *testing.T, ctx context.Context, url, prefix string) <-chan *watermillMessage {
	t.Helper()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	sub, err := processor.NewOutboxSubscriber(pool, "forget-test", watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	msgs, err := sub.Subscribe(ctx, processor.Topic(prefix, processor.TypePlayerForgotten))
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan *watermillMessage, 1)
	go func() {
		for m := range msgs {
			m.Ack()
			out <- &watermillMessage{payload: m.Payload}
			return
		}
	}()
	return out
}

// redisHolding lists the keys under prefix that hold s: in their name, a
// string's value, a set's members or a stream's entries (but for the
// stream of player.forgotten, whose message names the player for the
// consumers).
func redisHolding(t *testing.T, rdb *redis.Client, prefix, s string) []string {
	t.Helper()
	ctx := context.Background()
	var found []string
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		if strings.HasSuffix(key, "."+processor.TypePlayerForgotten) {
			continue
		}
		if strings.Contains(key, s) {
			found = append(found, key)
			continue
		}
		var content string
		switch rdb.Type(ctx, key).Val() {
		case "string":
			content = rdb.Get(ctx, key).Val()
		case "set":
			content = strings.Join(rdb.SMembers(ctx, key).Val(), " ")
		case "stream":
			for _, m := range rdb.XRange(ctx, key, "-", "+").Val() {
				content += fmt.Sprint(m.Values)
			}
		}
		if strings.Contains(content, s) {
			found = append(found, key)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return found
}

// analystHolding lists, connected as the analyst role, the tables it may
// read whose rows mention s (no exception), and fails unless it may read
// the read models and may not read the audit trail or the outbox of
// player.forgotten.
func analystHolding(t *testing.T, analyst *sql.DB, schema, forgottenTable, s string) []string {
	t.Helper()
	rows, err := analyst.Query(`SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'p') AND has_table_privilege(current_user, c.oid, 'SELECT')`, schema)
	if err != nil {
		t.Fatal(err)
	}
	readable := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		readable[name] = true
	}
	rows.Close()
	if !readable["queue_status"] || readable["audit_log"] || readable[forgottenTable] {
		t.Fatalf("the analyst reads queue_status %v, audit_log %v, %s %v; want true, false, false",
			readable["queue_status"], readable["audit_log"], forgottenTable, readable[forgottenTable])
	}
	var found []string
	for table := range readable {
		for _, r := range rowsOf(t, analyst, `"`+schema+`"."`+table+`"`) {
			if strings.Contains(r, s) {
				found = append(found, table+": "+r)
			}
		}
	}
	return found
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/app/apptest"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/web/auth"
)

// runCLI runs the command functions in process with env as the whole
// environment.
func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	code = run(context.Background(), args, strings.NewReader(""), &out, &errOut, func(k string) string { return env[k] })
	return code, out.String(), errOut.String()
}

var usageCases = []struct {
	name string
	args []string
	want string
}{
	{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
	{"unknown flag", []string{"serve", "--no-such-flag"}, "no-such-flag"},
	{"serve argument", []string{"serve", "extra"}, "serve takes no arguments"},
	{"migrate without subcommand", []string{"migrate"}, "up or status"},
	{"migrate bad subcommand", []string{"migrate", "down"}, "up or status"},
	{"token without player", []string{"token"}, "--player"},
	{"token bad player", []string{"token", "--player", "a b"}, "is not 1-64"},
	{"token bad role", []string{"token", "--player", "alice", "--role", "god"}, "role"},
	{"token bad ttl", []string{"token", "--player", "alice", "--ttl", "soon"}, "ttl"},
	{"version argument", []string{"version", "x"}, "no arguments"},
	{"bench bad rate", []string{"bench", "--rate", "0"}, "--rate"},
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, tc := range usageCases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, map[string]string{"TASKQUEUE_DATA_DIR": t.TempDir()}, tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 mentioning %q", code, stderr, tc.want)
			}
		})
	}
}

func TestInvalidConfigurationExit1(t *testing.T) {
	code, _, stderr := runCLI(t, map[string]string{
		"TASKQUEUE_QUEUE_LIMIT": "0x", "TASKQUEUE_DATA_DIR": t.TempDir(),
	}, "serve")
	if code != exitFail || !strings.Contains(stderr, "TASKQUEUE_QUEUE_LIMIT") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, map[string]string{
		"TASKQUEUE_DATABASE_URL": "postgres://x@127.0.0.1:1/db", "TASKQUEUE_LOG_FORMAT": "xml",
	}, "serve", "--queue-limit", "5000")
	for _, want := range []string{"TASKQUEUE_JWT_SECRET", "TASKQUEUE_LOG_FORMAT", "TASKQUEUE_QUEUE_LIMIT"} {
		if code != exitFail || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, stderr %q lacks %s", code, stderr, want)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	if code, out, _ := runCLI(t, nil, "help"); code != 0 || !strings.Contains(out, "taskqueue token --player") {
		t.Fatalf("help: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, nil, "help", "serve"); code != 0 || !strings.Contains(out, "TASKQUEUE_ADDR") || !strings.Contains(out, "--addr string") || !strings.Contains(out, "--offline-cap duration") || strings.Contains(out, " value\n") {
		t.Fatalf("help serve: %d %q", code, out)
	}
	if code, _, stderr := runCLI(t, nil, "serve", "-h"); code != 0 || !strings.Contains(stderr, "-data-dir") {
		t.Fatalf("serve -h: %d %q", code, stderr)
	}
	if code, out, _ := runCLI(t, nil, "version"); code != 0 || !strings.HasPrefix(out, "taskqueue ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestTokenUsesTheDataDirSecret(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"TASKQUEUE_DATA_DIR": dir}
	code, out, stderr := runCLI(t, env, "token", "--player", "alice", "--role", "admin", "--ttl", "2h")
	if code != 0 {
		t.Fatalf("token: %d %s", code, stderr)
	}
	// The server built on the same data directory accepts it.
	tokens, err := app.NewTokens(app.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	p, err := tokens.Verify(context.Background(), strings.TrimSpace(out))
	if err != nil || p.PlayerID != "alice" || p.Role != auth.RoleAdmin {
		t.Fatalf("token verifies as %+v, %v", p, err)
	}
	if info, err := os.Stat(filepath.Join(dir, auth.SecretFileName)); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", info, err)
	}
	// With a configured secret, the token is signed with it.
	secret := strings.Repeat("z", 40)
	code, out, _ = runCLI(t, map[string]string{"TASKQUEUE_JWT_SECRET": secret, "TASKQUEUE_DATABASE_URL": "postgres://x@h/db"}, "token", "--player", "bob")
	other, _ := auth.NewTokens(auth.TokensConfig{Secret: []byte(secret)})
	if p, err := other.Verify(context.Background(), strings.TrimSpace(out)); code != 0 || err != nil || p.Role != auth.RolePlayer {
		t.Fatalf("token with TASKQUEUE_JWT_SECRET: %d %+v %v", code, p, err)
	}
}

func TestMigrate(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		testMigrate(t, map[string]string{"TASKQUEUE_DATA_DIR": t.TempDir()})
	})
	t.Run("postgres", func(t *testing.T) {
		// No JWT secret: only serve and token need one.
		testMigrate(t, map[string]string{"TASKQUEUE_DATABASE_URL": testenv.Postgres(t)})
	})
}

// TestOperatorCommandsNeedNoSecret: the commands that neither mint nor
// verify tokens run outside dev mode without TASKQUEUE_JWT_SECRET; serve
// still refuses to start without it.
func TestOperatorCommandsNeedNoSecret(t *testing.T) {
	env := map[string]string{"TASKQUEUE_DATABASE_URL": testenv.Postgres(t)}
	for _, args := range [][]string{
		{"migrate", "up"},
		{"events", "--player", "alice"},
		{"queue", "--player", "alice"},
		{"export"},
		{"replay", "--projection", "all"},
	} {
		if code, _, stderr := runCLI(t, env, args...); code != 0 {
			t.Errorf("%v without a secret: exit %d: %s", args, code, stderr)
		}
	}
	if code, _, stderr := runCLI(t, env, "serve", "--addr", "127.0.0.1:0"); code != 1 || !strings.Contains(stderr, "TASKQUEUE_JWT_SECRET") {
		t.Errorf("serve without a secret: exit %d: %s", code, stderr)
	}
}

func testMigrate(t *testing.T, env map[string]string) {
	code, out, stderr := runCLI(t, env, "migrate", "status")
	if code != 0 || !strings.Contains(out, "pending") || strings.Contains(out, " 0 pending") {
		t.Fatalf("status before: %d %q %q", code, out, stderr)
	}
	first := "0001_events" // the SQLite file name
	if env["TASKQUEUE_DATABASE_URL"] != "" {
		first = "0001_event_store"
	}
	code, out, stderr = runCLI(t, env, "migrate", "up")
	if code != 0 || !strings.Contains(out, "applied "+first+"\n") {
		t.Fatalf("up: %d %q %q", code, out, stderr)
	}
	code, out, _ = runCLI(t, env, "migrate", "up")
	if code != 0 || !strings.Contains(out, "(0 applied now)") {
		t.Fatalf("second up: %d %q", code, out)
	}
	code, out, _ = runCLI(t, env, "migrate", "status")
	if code != 0 || !strings.Contains(out, ", 0 pending") {
		t.Fatalf("status after: %d %q", code, out)
	}
}

func TestMigrateUnreachableDatabase(t *testing.T) {
	code, _, stderr := runCLI(t, map[string]string{
		"TASKQUEUE_DATABASE_URL": "postgres://nobody@127.0.0.1:1/db?connect_timeout=2",
		"TASKQUEUE_JWT_SECRET":   strings.Repeat("s", 32),
	}, "migrate", "status")
	if code != exitFail || !strings.Contains(stderr, "PostgreSQL") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// TestServeBinary builds the binary, starts it on the embedded default,
// calls it, and stops it with SIGTERM: it must drain and exit 0.
func TestServeBinary(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	cmd := exec.Command(bin) // no arguments: serve
	cmd.Env = append(os.Environ(), "TASKQUEUE_DATA_DIR="+dir, "TASKQUEUE_ADDR=127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := bufio.NewScanner(stdout)
	var base string
	for lines.Scan() {
		if _, url, ok := strings.Cut(lines.Text(), "listening on "); ok {
			base = url
			break
		}
	}
	if base == "" {
		t.Fatalf("no listening line; stderr:\n%s", stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	code, out, _ := runCLI(t, map[string]string{"TASKQUEUE_DATA_DIR": dir}, "token", "--player", "alice")
	if code != 0 {
		t.Fatal("token failed")
	}
	req, _ := http.NewRequest("POST", base+"/api/queue/alice/tasks", strings.NewReader(`{"type":"chop-wood","count":2}`))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(out))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var task map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&task)
	resp.Body.Close()
	if resp.StatusCode != 201 || task["type"] != "chop-wood" {
		t.Fatalf("enqueue through the binary: %d %v\n%s", resp.StatusCode, task, stderr.String())
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("did not exit within 60s of SIGTERM\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "stopped") {
		t.Fatalf("no clean stop in the log:\n%s", stderr.String())
	}
}

// TestBench drives the load generator against the real graph at a low rate
// and checks that every scheduled request was sent and answered 201, each
// as its own player; then, past the server's per-address limit, that the
// report says the limiter was measured.
func TestBench(t *testing.T) {
	a := apptest.SQLite(t)
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	code, out, stderr := runCLI(t, map[string]string{"TASKQUEUE_DATA_DIR": a.Config.DataDir},
		"bench", "--url", srv.URL, "--rate", "20", "--duration", "1s", "--warmup", "0s", "--players", "4", "--player-prefix", "b-")
	if code != 0 {
		t.Fatalf("bench: %d %s", code, stderr)
	}
	if !strings.Contains(out, "sent 20 ") || !strings.Contains(out, "201: 20,") || !strings.Contains(out, "p99") {
		t.Fatalf("bench output:\n%s", out)
	}
	for i := 0; i < 4; i++ {
		v, err := a.Store.StreamVersion(t.Context(), fmt.Sprintf("queue-b-%d", i))
		if err != nil || v < 5 {
			t.Fatalf("queue-b-%d has version %d (%v); want at least 5 (one enqueue each)", i, v, err)
		}
		evs, err := a.Store.ReadStream(t.Context(), fmt.Sprintf("queue-b-%d", i), 0, 1)
		if err != nil || len(evs) != 1 || evs[0].Metadata.Actor != fmt.Sprintf("b-%d", i) {
			t.Fatalf("queue-b-%d's first event: %+v, %v; want it caused by the player b-%d", i, evs, err, i)
		}
	}
	if strings.Contains(out, "RATE LIMITED") {
		t.Fatalf("bench reported rate limiting below the limits:\n%s", out)
	}
	// 150 requests in a second from one address: over the per-address
	// burst of 60.
	_, out, _ = runCLI(t, map[string]string{"TASKQUEUE_DATA_DIR": a.Config.DataDir},
		"bench", "--url", srv.URL, "--rate", "150", "--duration", "1s", "--warmup", "0s", "--players", "50", "--player-prefix", "c-")
	if !strings.Contains(out, "RATE LIMITED: ") || !strings.Contains(out, "TASKQUEUE_RATE_LIMIT_IP=-1") {
		t.Fatalf("bench past the per-address limit does not say it measured the limiter:\n%s", out)
	}
}

// TestOperatorCommands drives events, queue, export, import and replay
// through the command functions on real SQLite stores: export from one data
// directory, import into another, and see the same events there.
func TestOperatorCommands(t *testing.T) {
	src := t.TempDir()
	a := apptest.SQLite(t, func(c *app.Config) { c.DataDir = src })
	for _, typ := range []string{"chop-wood", "mine-copper"} {
		_, err := a.Commands.EnqueueTask.Handle(t.Context(), command.EnqueueTask{
			Request: command.Request{PlayerID: "alice", Actor: "alice"}, Type: typ, Count: 3,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"TASKQUEUE_DATA_DIR": src}
	code, out, stderr := runCLI(t, env, "events", "--player", "alice")
	if code != 0 || strings.Count(out, "\n") < 2 || !strings.Contains(out, `"TaskEnqueued"`) {
		t.Fatalf("events: %d %q %s", code, out, stderr)
	}
	srcLines := strings.Count(out, "\n")
	if code, out, stderr = runCLI(t, env, "queue", "--player", "alice"); code != 0 || !strings.Contains(out, "mine-copper") {
		t.Fatalf("queue: %d %q %s", code, out, stderr)
	}
	code, export, stderr := runCLI(t, env, "export")
	if code != 0 || !strings.Contains(stderr, "exported") {
		t.Fatalf("export: %d %s", code, stderr)
	}
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(file, []byte(export), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := map[string]string{"TASKQUEUE_DATA_DIR": t.TempDir()}
	if code, _, stderr = runCLI(t, dst, "import", file); code != 0 || !strings.Contains(stderr, "imported") {
		t.Fatalf("import: %d %s", code, stderr)
	}
	if code, _, stderr = runCLI(t, dst, "import", file); code != exitFail {
		t.Fatalf("a second import into a non-empty store: %d %s", code, stderr)
	}
	if code, out, _ = runCLI(t, dst, "events", "--player", "alice"); code != 0 || strings.Count(out, "\n") != srcLines {
		t.Fatalf("events after import: %d lines, want %d", strings.Count(out, "\n"), srcLines)
	}
	if code, out, stderr = runCLI(t, dst, "replay", "--projection", "all"); code != 0 || !strings.Contains(out, "serves") {
		t.Fatalf("replay: %d %q %s", code, out, stderr)
	}
	into := filepath.Join(t.TempDir(), "then.db")
	if code, out, stderr = runCLI(t, dst, "replay", "--projection", "all", "--to-position", "1", "--into", into); code != 0 || !strings.Contains(out, "replayed into") {
		t.Fatalf("replay to a position: %d %q %s", code, out, stderr)
	}
	if _, err := os.Stat(into); err != nil {
		t.Fatalf("replay wrote no file: %v", err)
	}
	for _, args := range [][]string{{"events"}, {"queue", "--player", "a b"}, {"replay"}, {"replay", "--projection", "all", "--to-time", "2026-01-01", "--to-position", "3"}, {"events", "--player", "alice", "--from", "soon"}} {
		if code, _, stderr := runCLI(t, env, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, stderr)
		}
	}
}

// backup copies a data directory into a new one that serves as it was, and
// says plainly what it cannot do.
func TestBackupCommand(t *testing.T) {
	data := t.TempDir()
	env := map[string]string{"TASKQUEUE_DATA_DIR": data}
	if code, _, stderr := runCLI(t, env, "backup"); code != exitUsage || !strings.Contains(stderr, "backup needs --to DIR") {
		t.Fatalf("backup without --to: %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, env, "backup", "--to", t.TempDir()+"/b"); code != exitFail || !strings.Contains(stderr, "no database at") {
		t.Fatalf("backup of an empty data directory: %d %s", code, stderr)
	}
	pg := map[string]string{"TASKQUEUE_DATABASE_URL": "postgres://nowhere/db", "TASKQUEUE_JWT_SECRET": strings.Repeat("k", 40)}
	if code, _, stderr := runCLI(t, pg, "backup", "--to", t.TempDir()+"/b"); code != exitFail || !strings.Contains(stderr, "pg_basebackup") {
		t.Fatalf("backup on PostgreSQL: %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, env, "export"); code != exitOK {
		t.Fatalf("export to create the store: %d %s", code, stderr)
	}
	to := t.TempDir() + "/backup"
	code, stdout, stderr := runCLI(t, env, "backup", "--to", to)
	if code != exitOK || !strings.Contains(stdout, "backed up 0 events") {
		t.Fatalf("backup: %d %s %s", code, stdout, stderr)
	}
	if code, _, stderr := runCLI(t, map[string]string{"TASKQUEUE_DATA_DIR": to}, "export"); code != exitOK {
		t.Fatalf("the backup does not open as a data directory: %d %s", code, stderr)
	}
	// The operator's commands are in the audit trail.
	for _, action := range []string{"ops.backup", "ops.export"} {
		code, stdout, stderr := runCLI(t, env, "audit", "--action", action)
		if code != exitOK || !strings.Contains(stdout, `"action":"`+action+`"`) || !strings.Contains(stdout, `"principal":"operator"`) {
			t.Errorf("audit --action %s: %d %s %s", action, code, stdout, stderr)
		}
	}
}

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/internal/testenv"
)

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// binary builds the taskqueue binary once per test run.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if runtime.GOOS == "windows" {
		t.Skip("signals")
	}
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "taskqueue-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "taskqueue")
		if out, err := exec.Command("go", "build", "-o", binaryPath, ".").CombinedOutput(); err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// serverProcess is `taskqueue serve` running as a process of its own.
type serverProcess struct {
	cmd    *exec.Cmd
	base   string
	stderr *testenv.SyncBuffer
}

// startServer starts the binary with env and waits for its listening line.
func startServer(t *testing.T, bin string, env map[string]string) *serverProcess {
	t.Helper()
	return startBinary(t, bin, env, "listening on ", "serve")
}

// startBinary starts the binary with args and env and waits for the line
// of its stdout with marker; base is the word after it ("listening on " of
// serve, "probes on " of processor).
func startBinary(t *testing.T, bin string, env map[string]string, marker string, args ...string) *serverProcess {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{cmd: cmd, stderr: &testenv.SyncBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if _, rest, ok := strings.Cut(lines.Text(), marker); ok {
			p.base, _, _ = strings.Cut(rest, " ")
			break
		}
	}
	if p.base == "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("%s: no %q line; stderr:\n%s", args, marker, p.stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return p
}

// tickCatalogFile writes the default catalog plus "tick" (400 ms, 1 log,
// 1 XP: no level-up shortens it) and returns its path.
func tickCatalogFile(t *testing.T) string {
	t.Helper()
	var f map[string]any
	if err := json.Unmarshal(domain.DefaultCatalogJSON(), &f); err != nil {
		t.Fatal(err)
	}
	f["tasks"] = append(f["tasks"].([]any), map[string]any{
		"id": "tick", "name": "Tick", "skill": "woodcutting", "levelRequired": 1, "baseDurationMs": 400,
		"inputs": map[string]any{}, "outputs": map[string]any{"logs": 1}, "xp": 1,
	})
	b, _ := json.Marshal(f)
	path := filepath.Join(t.TempDir(), "catalog.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestKilledServerCatchesUpOnRestart: a real `taskqueue serve` process is
// killed (SIGKILL) while a player's queue runs; repetitions fall due while
// it is down; started again on the same store, it completes every one of
// them — each once, at its due time, with the rules' rewards — whether or
// not anyone is connected (offline progress after a real restart).
func TestKilledServerCatchesUpOnRestart(t *testing.T) {
	bin := binary(t)
	catalog := tickCatalogFile(t)
	t.Run("sqlite", func(t *testing.T) {
		testKilledServerCatchesUp(t, bin, map[string]string{
			"TASKQUEUE_DATA_DIR": t.TempDir(), "TASKQUEUE_ADDR": "127.0.0.1:0", "TASKQUEUE_CATALOG": catalog,
		})
	})
	t.Run("postgres", func(t *testing.T) {
		testKilledServerCatchesUp(t, bin, map[string]string{
			"TASKQUEUE_DATA_DIR": t.TempDir(), "TASKQUEUE_ADDR": "127.0.0.1:0", "TASKQUEUE_CATALOG": catalog,
			"TASKQUEUE_DATABASE_URL": testenv.Postgres(t), "TASKQUEUE_JWT_SECRET": strings.Repeat("r", 32),
			"TASKQUEUE_DATABASE_MAX_CONNS": "6",
		})
	})
}

func testKilledServerCatchesUp(t *testing.T, bin string, env map[string]string) {
	const reps = 30
	srv := startServer(t, bin, env)
	code, tok, stderr := runCLI(t, env, "token", "--player", "alice")
	if code != 0 {
		t.Fatalf("token: %s", stderr)
	}
	auth := "Bearer " + strings.TrimSpace(tok)
	call := func(base, method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	done := func(base string) (tasks int, doneReps float64) {
		t.Helper()
		status, q := call(base, "GET", "/api/queue/alice", "")
		if status != 200 {
			t.Fatalf("GET queue: %d %v", status, q)
		}
		list, _ := q["tasks"].([]any)
		if len(list) > 0 {
			doneReps, _ = list[0].(map[string]any)["done"].(float64)
		}
		return len(list), doneReps
	}
	if status, body := call(srv.base, "POST", "/api/queue/alice/tasks", fmt.Sprintf(`{"type":"tick","count":%d}`, reps)); status != 201 {
		t.Fatalf("enqueue: %d %v", status, body)
	}
	// Some repetitions complete live, then the process is killed.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if _, d := done(srv.base); d >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no repetitions completed live; stderr:\n%s", srv.stderr.String())
		}
	}
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = srv.cmd.Wait()
	killedAt := time.Now()
	// Down long enough for several repetitions to fall due unprocessed
	// (the remaining ones run until about 12 s after the enqueue).
	time.Sleep(3 * time.Second)

	again := startServer(t, bin, env)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if n, _ := done(again.base); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue never finished after the restart; stderr:\n%s", again.stderr.String())
		}
	}
	_, q := call(again.base, "GET", "/api/queue/alice", "")
	if inv, _ := q["inventory"].(map[string]any); inv["logs"] != float64(reps) {
		t.Errorf("inventory %v, want %d logs", q["inventory"], reps)
	}
	if err := again.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = again.cmd.Wait()

	// The log: every repetition started and completed once, completed at
	// its due time, some of them while no process ran.
	code, out, stderr := runCLI(t, env, "events", "--player", "alice")
	if code != 0 {
		t.Fatalf("events: %s", stderr)
	}
	due := map[float64]string{}
	completed := map[float64]int{}
	whileDown := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e struct {
			Type string `json:"type"`
			Data struct {
				Number      float64 `json:"number"`
				DueAt       string  `json:"dueAt"`
				CompletedAt string  `json:"completedAt"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("event line %q: %v", line, err)
		}
		switch e.Type {
		case "RepetitionStarted":
			due[e.Data.Number] = e.Data.DueAt
		case "RepetitionCompleted":
			completed[e.Data.Number]++
			if e.Data.CompletedAt != due[e.Data.Number] {
				t.Errorf("repetition %v completed at %s, due at %s", e.Data.Number, e.Data.CompletedAt, due[e.Data.Number])
			}
			if at, err := time.Parse(time.RFC3339Nano, e.Data.CompletedAt); err == nil && at.After(killedAt) && at.Before(killedAt.Add(3*time.Second)) {
				whileDown++
			}
		}
	}
	for n := 1; n <= reps; n++ {
		if completed[float64(n)] != 1 {
			t.Errorf("repetition %d completed %d times", n, completed[float64(n)])
		}
	}
	if whileDown == 0 {
		t.Errorf("no repetition fell due while the process was down: the test did not test offline progress")
	}
	t.Logf("%d repetitions, %d of them due while no process ran", reps, whileDown)
}

// TestMain removes the binary the tests built (binary), once they are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if binaryPath != "" {
		_ = os.RemoveAll(filepath.Dir(binaryPath))
	}
	os.Exit(code)
}

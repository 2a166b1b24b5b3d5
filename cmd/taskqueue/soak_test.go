package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestServeProfilerAndSoak starts serve with TASKQUEUE_DEBUG_ADDR: the
// profiler answers on its own port and not on the API's. Then a short
// `taskqueue soak` plays against it and writes its memory samples (heap
// numbers read from the server) and a heap profile.
func TestServeProfilerAndSoak(t *testing.T) {
	dataDir := t.TempDir()
	env := map[string]string{
		"TASKQUEUE_DATA_DIR": dataDir, "TASKQUEUE_ADDR": "127.0.0.1:0", "TASKQUEUE_DEBUG_ADDR": "127.0.0.1:0",
		"TASKQUEUE_RATE_LIMIT_IP": "-1",
	}
	s := startServe(t, env)
	m := regexp.MustCompile(`msg="profiler listening" url=(http://\S+)/debug/pprof/`).FindStringSubmatch(s.stderr.String())
	if m == nil {
		t.Fatalf("no profiler line in the log:\n%s", s.stderr.String())
	}
	debugURL := strings.Replace(m[1], "localhost", "127.0.0.1", 1)
	get := func(u string) (int, string) {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(debugURL + "/debug/pprof/heap?debug=1"); code != 200 || !strings.Contains(body, "# HeapInuse = ") {
		t.Fatalf("GET the heap profile on the profiler's port: %d\n%.300s", code, body)
	}
	base := strings.Replace(s.base, "localhost", "127.0.0.1", 1)
	// (The web app answers unknown paths with its page.)
	if _, body := get(base + "/debug/pprof/heap?debug=1"); strings.Contains(body, "HeapInuse") {
		t.Fatalf("the API's port serves the profiler too")
	}

	out := t.TempDir()
	code, stdout, stderr := runCLI(t, map[string]string{"TASKQUEUE_DATA_DIR": dataDir}, "soak",
		"--url", base, "--debug-url", debugURL, "--duration", "4s", "--sample", "1s", "--profile-at", "2s",
		"--players", "3", "--chains", "1", "--out", out)
	if code != 0 {
		t.Fatalf("soak: %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "POST tasks 201:") || strings.Contains(stdout, "rate limited") {
		t.Fatalf("soak enqueued nothing, or was rate limited:\n%s", stdout)
	}
	b, err := os.ReadFile(filepath.Join(out, "samples.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	// One sample at the start and one at the end at least (on a busy
	// machine a sample can take longer than --sample).
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "minute\theap_inuse_MB") {
		t.Fatalf("samples.tsv:\n%s", b)
	}
	for _, line := range lines[1:] {
		f := strings.Split(line, "\t")
		inuse, _ := strconv.ParseFloat(f[1], 64)
		live, _ := strconv.ParseFloat(f[3], 64)
		rss, _ := strconv.ParseFloat(f[5], 64)
		if inuse <= 0 || live <= 0 || rss <= 0 {
			t.Fatalf("a sample without the server's heap in use, live heap or RSS: %q\n%s", line, b)
		}
	}
	if fi, err := os.Stat(filepath.Join(out, "heap-2s.pb.gz")); err != nil || fi.Size() == 0 {
		t.Fatalf("no heap profile at 2s: %v", err)
	}
}

package metrics

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskqueue/taskqueue/internal/testenv"
)

// registeredNames returns the name of every metric family r exports.
func registeredNames(r *Registry) []string {
	ch := make(chan *prometheus.Desc, 1000)
	for _, c := range r.collectors {
		c.Describe(ch)
	}
	close(ch)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	var names []string
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}

// The alert rules and the dashboard use only metrics the service exports:
// a renamed metric fails here, not silently in production.
func TestDeployFilesUseOnlyExportedMetrics(t *testing.T) {
	names := registeredNames(New())
	if !slices.Contains(names, "taskqueue_projection_lag_seconds") || !slices.Contains(names, "go_goroutines") {
		t.Fatalf("registered names look wrong: %v", names)
	}
	used := regexp.MustCompile(`\b(taskqueue_[a-z_]+|go_[a-z_]+|process_[a-z_]+)\b`)
	for _, path := range []string{"../deploy/prometheus/alerts.yml", "../deploy/grafana/taskqueue.json"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, m := range used.FindAllString(string(b), -1) {
			base := m
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if s, ok := strings.CutSuffix(m, suffix); ok && slices.Contains(names, s) {
					base = s
				}
			}
			if !slices.Contains(names, base) {
				t.Errorf("%s uses %s, which the service does not export", path, m)
			}
			seen++
		}
		if seen < 10 {
			t.Errorf("%s names only %d metrics", path, seen)
		}
	}

	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	b, err := os.ReadFile("../deploy/grafana/taskqueue.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" || len(dash.Panels) < 10 {
		t.Fatalf("dashboard: uid %q, %d panels", dash.UID, len(dash.Panels))
	}
}

// docker-compose.yml passes `docker compose config` (or docker-compose v1's)
// where the tool is installed, and names the services issue 8 asks for.
func TestComposeFileIsValid(t *testing.T) {
	var cmd *exec.Cmd
	if _, err := exec.LookPath("docker-compose"); err == nil {
		cmd = exec.Command("docker-compose", "--profile", "kurrentdb", "--profile", "monitoring", "config")
	} else if _, err := exec.LookPath("docker"); err == nil && exec.Command("docker", "compose", "version").Run() == nil {
		cmd = exec.Command("docker", "compose", "--profile", "kurrentdb", "--profile", "monitoring", "config")
	} else if testenv.Required() {
		t.Fatal("neither docker-compose nor the docker compose plugin is installed, and TASKQUEUE_TEST_REQUIRE_SERVICES=1 (.ci/run installs docker-compose)")
	} else {
		t.Skip("neither docker-compose nor the docker compose plugin is installed")
	}
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "TASKQUEUE_JWT_SECRET="+strings.Repeat("0123456789abcdef", 4))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	text := string(out)
	for _, want := range []string{"  postgres:", "  redis:", "  kurrentdb:", "  taskqueue-1:", "  taskqueue-2:",
		"TASKQUEUE_DATABASE_URL: postgres://", "TASKQUEUE_REDIS_URL: redis://", "TASKQUEUE_KURRENTDB_URL: esdb://",
		"http://127.0.0.1:8080/readyz", "pg_isready", "condition: service_healthy"} {
		if !strings.Contains(text, want) {
			t.Errorf("compose config has no %q", want)
		}
	}
}

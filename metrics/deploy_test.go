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

// lookTool returns the path of a tool Debian packages, skipping t without
// it (failing it when services are required: .ci/run installs them).
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if testenv.Required() {
			t.Fatalf("%s is not installed and TASKQUEUE_TEST_REQUIRE_SERVICES=1 (.ci/run installs Debian's %s)", name, pkg)
		}
		t.Skipf("%s is not installed (Debian: apt-get install %s)", name, pkg)
	}
	return path
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The Prometheus configuration and alert rules pass promtool, and the
// alert rules' unit tests (deploy/prometheus/alerts_test.yml) pass.
func TestAlertRules(t *testing.T) {
	promtool := lookTool(t, "promtool", "prometheus")
	run(t, "../deploy/prometheus", nil, promtool, "check", "config", "prometheus.yml")
	run(t, "../deploy/prometheus", nil, promtool, "check", "rules", "alerts.yml")
	out := run(t, "../deploy/prometheus", nil, promtool, "test", "rules", "alerts_test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

// Alertmanager's configuration, rendered from its template with and
// without the receivers' settings, passes amtool, and routes each severity
// to its receiver: critical pages, warning makes a ticket, info is logged.
func TestAlertmanagerConfig(t *testing.T) {
	amtool := lookTool(t, "amtool", "prometheus-alertmanager")
	dir := t.TempDir()
	for name, env := range map[string][]string{
		"unset": nil,
		"set": {"TASKQUEUE_ALERT_SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T0/B0/a&b|c\"d",
			"TASKQUEUE_ALERT_PAGERDUTY_ROUTING_KEY=0123456789abcdef0123456789abcdef",
			"TASKQUEUE_ALERT_EMAIL_TO=oncall@example.com", "TASKQUEUE_ALERT_SMTP_HOST=smtp.example.com:587"},
	} {
		out := dir + "/" + name + ".yml"
		run(t, "../deploy/alertmanager", env, "sh", "render.sh", "alertmanager.yml.tmpl", out)
		run(t, dir, nil, amtool, "check-config", out)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if name == "set" && !strings.Contains(string(b), `"https://hooks.slack.com/services/T0/B0/a&b|c\"d"`) {
			t.Errorf("the Slack URL was not filled in as given:\n%s", b)
		}
		for severity, want := range map[string]string{"critical": "page", "warning": "ticket", "info": "log", "": "ticket"} {
			lines := strings.Split(strings.TrimSpace(run(t, dir, nil, amtool, "config", "routes", "test", "--config.file="+out,
				"alertname=TaskqueueX", "severity="+severity)), "\n")
			got := lines[len(lines)-1] // after amtool's warnings
			if got != want {
				t.Errorf("%s: severity %q goes to %q, want %q", name, severity, got, want)
			}
		}
	}
}

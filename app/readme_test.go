package app

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEConfigurationTable keeps the README's configuration table true:
// every setting appears with its flag and its default.
func TestREADMEConfigurationTable(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "| `TASKQUEUE_") {
			env := strings.Trim(strings.Fields(line)[1], "`")
			rows[env] = line
		}
	}
	for _, o := range Options() {
		row, ok := rows[o.Env]
		if !ok {
			t.Errorf("README's configuration table has no row for %s", o.Env)
			continue
		}
		if !strings.Contains(row, "`--"+o.Flag+"`") {
			t.Errorf("README row of %s does not name the flag --%s", o.Env, o.Flag)
		}
		if o.Default != "" && o.Env != "TASKQUEUE_DEV" && !strings.Contains(row, "`"+o.Default+"`") {
			t.Errorf("README row of %s does not give the default %s", o.Env, o.Default)
		}
	}
}

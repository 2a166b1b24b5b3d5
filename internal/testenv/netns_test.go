package testenv

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestNetworkCutDropsAndHeals: a host reaches a Redis server on another
// host; cut, the same call times out (nothing refused: the packets are
// dropped) while the test's own namespace still reaches the server; healed,
// it answers again. The network is gone when the test ends.
func TestNetworkCutDropsAndHeals(t *testing.T) {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli is not on PATH")
	}
	var netns []string
	t.Run("network", func(t *testing.T) {
		n := StartNetwork(t)
		db, app := n.AddHost("db"), n.AddHost("app")
		netns = []string{db.Netns, app.Netns, n.sw}
		rds := StartRedisServerOn(t, db)
		ping := func(h *Host) (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, "ip", "netns", "exec", h.Netns, "redis-cli", "-h", db.IP, "-p", "6379", "ping").CombinedOutput()
			return strings.TrimSpace(string(out)), err
		}
		if out, err := ping(app); out != "PONG" {
			t.Fatalf("before the cut: %q %v", out, err)
		}
		cut := n.Cut(app, db, 6379)
		began := time.Now()
		if out, err := ping(app); err == nil || strings.Contains(out, "refused") {
			t.Errorf("across the cut: %q %v, want a timeout", out, err)
		}
		if waited := time.Since(began); waited < 1900*time.Millisecond {
			t.Errorf("across the cut the call failed after %s: refused, not dropped", waited)
		}
		if !rds.answers() {
			t.Error("the test's own namespace lost the server: the cut is wider than one host")
		}
		cut.Heal()
		if out, err := ping(app); out != "PONG" {
			t.Fatalf("after the heal: %q %v", out, err)
		}
	})
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, name := range netns {
		if strings.Contains(string(out), name) {
			t.Errorf("namespace %s still there after the test", name)
		}
	}
}

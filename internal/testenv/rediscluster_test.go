package testenv

import (
	"testing"
	"time"
)

// The cluster starts healthy, a manual failover and a killed master each
// leave it healthy again with the replica promoted.
func TestRedisCluster(t *testing.T) {
	start := time.Now()
	c := StartRedisCluster(t)
	t.Logf("started in %s: %s", time.Since(start), c.URL())
	m := c.MasterOf("{presence}:x")
	t.Logf("failover of %s: %s", m, c.Failover(m))
	m = c.MasterOf("x")
	t.Logf("kill of %s: promoted after %s", m, c.KillMaster(m))
}

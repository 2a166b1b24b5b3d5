package testenv

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/redisx"
)

// RedisCluster is a Redis Cluster of the test's own: three masters, each
// with one replica, on free loopback ports below the ephemeral range (the
// cluster bus too), keeping nothing on disk but their node files in a
// temporary directory. Its node timeout is one second, so a killed master's
// replica takes over within a few seconds.
type RedisCluster struct {
	t     testing.TB
	dir   string
	nodes []*clusterNode
}

type clusterNode struct {
	port, bus int
	cmd       *exec.Cmd
}

// ClusterNodeTimeout is cluster-node-timeout of StartRedisCluster's nodes.
const ClusterNodeTimeout = time.Second

// StartRedisCluster starts a cluster for t (3 masters, 3 replicas) and
// stops it when t ends. It waits until every node reports cluster_state:ok
// and knows all six. Without redis-server or redis-cli on PATH it skips t
// (fails it when services are required).
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if Required() {
				t.Fatalf("%s is not on PATH and TASKQUEUE_TEST_REQUIRE_SERVICES=1", bin)
			}
			t.Skipf("%s is not on PATH", bin)
		}
	}
	c := &RedisCluster{t: t, dir: t.TempDir()}
	t.Cleanup(c.stop)
	for range 6 {
		n := &clusterNode{port: freePort(t), bus: freePort(t)}
		c.nodes = append(c.nodes, n)
		c.startNode(n)
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy(30 * time.Second)
	return c
}

// freePort returns a free loopback port below the ephemeral range.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := listenBelowEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (c *RedisCluster) startNode(n *clusterNode) {
	c.t.Helper()
	n.cmd = exec.Command("redis-server", "--port", strconv.Itoa(n.port), "--cluster-port", strconv.Itoa(n.bus),
		"--bind", "127.0.0.1", "--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(c.dir, fmt.Sprintf("nodes-%d.conf", n.port)),
		"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout.Milliseconds())),
		"--repl-diskless-sync-delay", "0",
		"--dir", c.dir, "--save", "", "--appendonly", "no", "--daemonize", "no")
	if err := n.cmd.Start(); err != nil {
		c.t.Fatalf("start redis-server: %v", err)
	}
	r := &RedisServer{t: c.t, port: n.port}
	for deadline := time.Now().Add(30 * time.Second); !r.answers(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster node on port %d did not answer PING within 30s", n.port)
		}
	}
}

func (c *RedisCluster) stop() {
	for _, n := range c.nodes {
		if n.cmd != nil && n.cmd.Process != nil {
			_ = n.cmd.Process.Kill()
			_ = n.cmd.Wait()
			n.cmd = nil
		}
	}
}

// Addrs are the nodes' host:port.
func (c *RedisCluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = fmt.Sprintf("127.0.0.1:%d", n.port)
	}
	return out
}

// URL is the cluster's TASKQUEUE_REDIS_URL: redis+cluster:// and every
// node as a seed.
func (c *RedisCluster) URL() string { return "redis+cluster://" + strings.Join(c.Addrs(), ",") }

// node runs a command on one node.
func (c *RedisCluster) node(addr string, args ...any) (any, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return rdb.Do(ctx, args...).Result()
}

// clusterView is one node's CLUSTER NODES: id → addr, role, master id, and
// which nodes it believes failed.
type clusterView struct {
	addr   map[string]string
	master map[string]string // replica id → master id; masters map to ""
	failed map[string]bool
	self   string
}

func (c *RedisCluster) view(addr string) (clusterView, error) {
	out, err := c.node(addr, "CLUSTER", "NODES")
	if err != nil {
		return clusterView{}, err
	}
	v := clusterView{addr: map[string]string{}, master: map[string]string{}, failed: map[string]bool{}}
	for _, line := range strings.Split(strings.TrimSpace(fmt.Sprint(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		id, flags := f[0], f[2]
		v.addr[id], _, _ = strings.Cut(f[1], "@")
		if strings.Contains(flags, "myself") {
			v.self = id
		}
		if strings.Contains(flags, "fail") && !strings.Contains(flags, "fail?") {
			v.failed[id] = true
		}
		if strings.Contains(flags, "slave") {
			v.master[id] = f[3]
		} else {
			v.master[id] = ""
		}
	}
	return v, nil
}

// WaitHealthy waits until every running node reports cluster_state:ok and
// agrees on three healthy masters that each have a replica.
func (c *RedisCluster) WaitHealthy(within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		why := c.unhealthy()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redis cluster not healthy within %s: %s", within, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *RedisCluster) unhealthy() string {
	agreed := ""
	for _, n := range c.nodes {
		if n.cmd == nil {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", n.port)
		info, err := c.node(addr, "CLUSTER", "INFO")
		if err != nil {
			return fmt.Sprintf("%s: %v", addr, err)
		}
		if !strings.Contains(fmt.Sprint(info), "cluster_state:ok") {
			return addr + ": cluster_state not ok"
		}
		repl, err := c.node(addr, "INFO", "replication")
		if err != nil {
			return fmt.Sprintf("%s: %v", addr, err)
		}
		if r := fmt.Sprint(repl); strings.Contains(r, "role:slave") && !strings.Contains(r, "master_link_status:up") {
			return addr + ": replica not in sync with its master"
		}
		v, err := c.view(addr)
		if err != nil {
			return fmt.Sprintf("%s: %v", addr, err)
		}
		var masters []string
		replicated := map[string]bool{}
		for id, m := range v.master {
			switch {
			case v.failed[id]:
			case m == "":
				masters = append(masters, v.addr[id])
			default:
				replicated[m] = true
			}
		}
		if len(masters) != 3 || len(replicated) != 3 {
			return fmt.Sprintf("%s sees %d healthy masters, %d with a replica", addr, len(masters), len(replicated))
		}
		slices.Sort(masters)
		if seen := strings.Join(masters, ","); agreed == "" {
			agreed = seen
		} else if seen != agreed {
			return fmt.Sprintf("the nodes disagree on the masters: %s, %s", agreed, seen)
		}
	}
	return ""
}

// Masters returns the addresses of the healthy masters, as the first node
// that answers sees them.
func (c *RedisCluster) Masters() []string {
	c.t.Helper()
	for _, addr := range c.Addrs() {
		v, err := c.view(addr)
		if err != nil {
			continue
		}
		var out []string
		for id, m := range v.master {
			if m == "" && !v.failed[id] {
				out = append(out, v.addr[id])
			}
		}
		slices.Sort(out)
		return out
	}
	c.t.Fatal("no cluster node answers")
	return nil
}

// MasterOf returns the address of the master serving key: the node that
// says of itself that it is a master and holds key's slot.
func (c *RedisCluster) MasterOf(key string) string {
	c.t.Helper()
	slot := redisx.Slot(key)
	for _, addr := range c.Addrs() {
		out, err := c.node(addr, "CLUSTER", "NODES")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(fmt.Sprint(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 9 || !strings.Contains(f[2], "myself") || !strings.Contains(f[2], "master") {
				continue
			}
			for _, r := range f[8:] {
				lo, hi, ok := strings.Cut(r, "-")
				if !ok {
					hi = lo
				}
				a, err1 := strconv.Atoi(lo)
				b, err2 := strconv.Atoi(hi)
				if err1 == nil && err2 == nil && a <= slot && slot <= b {
					return addr
				}
			}
		}
	}
	c.t.Fatalf("no master serves slot %d of %q", slot, key)
	return ""
}

// Failover promotes the replica of the master at addr with CLUSTER
// FAILOVER (a manual failover: the replica catches up, then takes over
// with no write lost) and waits until the cluster is healthy again, the
// old master now a replica. It returns how long that took.
func (c *RedisCluster) Failover(master string) time.Duration {
	c.t.Helper()
	start := time.Now()
	replica := c.replicaOf(master)
	if _, err := c.node(replica, "CLUSTER", "FAILOVER"); err != nil {
		c.t.Fatalf("CLUSTER FAILOVER on %s: %v", replica, err)
	}
	c.waitMaster(replica, 30*time.Second)
	c.WaitHealthy(30 * time.Second)
	return time.Since(start)
}

// KillMaster kills the master at addr (SIGKILL), waits until its replica
// is promoted, then starts the killed node again (it rejoins as a replica
// of the new master) and waits until the cluster is healthy. It returns
// how long the promotion took after the kill.
func (c *RedisCluster) KillMaster(master string) time.Duration {
	c.t.Helper()
	replica := c.replicaOf(master)
	var n *clusterNode
	for _, x := range c.nodes {
		if fmt.Sprintf("127.0.0.1:%d", x.port) == master {
			n = x
		}
	}
	start := time.Now()
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	n.cmd = nil
	c.waitMaster(replica, 30*time.Second)
	took := time.Since(start)
	c.startNode(n)
	c.WaitHealthy(30 * time.Second)
	return took
}

// replicaOf returns the address of a replica of the master at addr.
func (c *RedisCluster) replicaOf(master string) string {
	c.t.Helper()
	v, err := c.view(master)
	if err != nil {
		c.t.Fatal(err)
	}
	for id, m := range v.master {
		if m == v.self {
			return v.addr[id]
		}
	}
	c.t.Fatalf("master %s has no replica", master)
	return ""
}

// waitMaster waits until the node at addr says it is a master.
func (c *RedisCluster) waitMaster(addr string, within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, err := c.node(addr, "ROLE")
		if err == nil {
			if l, ok := out.([]any); ok && len(l) > 0 && l[0] == "master" {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s was not promoted within %s (ROLE %v, %v)", addr, within, out, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package main

import (
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/relay"
)

// TestRedisClusterFailover runs the fault suite's deployment on a Redis
// Cluster of its own (3 masters, 3 replicas): two `serve` processes and a
// `taskqueue processor` on PostgreSQL, the players' commands spread over
// both serve processes. While they play, each master in turn is failed
// over (CLUSTER FAILOVER on its replica), then the master of the
// integration stream task.completed is killed (its replica
// promoted after the node timeout; the killed node rejoins as a replica).
// The suite's promises hold: no answer a 500 or a 503 without Retry-After
// (a 503 is retried with the same Idempotency-Key), every acknowledged task
// in the log once, every repetition completed once, the read models equal
// a replay; and after each failover a new task completes.
func TestRedisClusterFailover(t *testing.T) {
	bin := binary(t)
	cluster := testenv.StartRedisCluster(t)
	env := map[string]string{
		"TASKQUEUE_ADDR": "127.0.0.1:0", "TASKQUEUE_CATALOG": tickCatalogFile(t),
		"TASKQUEUE_REQUEST_TIMEOUT": faultRequestTimeout.String(),
		// Limits the load never reaches, so every command still asks Redis.
		"TASKQUEUE_RATE_LIMIT_PLAYER": "100000", "TASKQUEUE_RATE_LIMIT_IP": "100000",
		"TASKQUEUE_LOG_LEVEL":          "info",
		"TASKQUEUE_DATA_DIR":           t.TempDir(),
		"TASKQUEUE_DATABASE_URL":       testenv.Postgres(t),
		"TASKQUEUE_DATABASE_MAX_CONNS": "8",
		"TASKQUEUE_JWT_SECRET":         strings.Repeat("c", 32),
		"TASKQUEUE_REDIS_URL":          cluster.URL(),
		"TASKQUEUE_REDIS_PREFIX":       "tq:",
		"TASKQUEUE_PROCESSOR":          "false", // a `taskqueue processor` process of its own
	}
	d := newDeployment(t, bin, env, true)
	second := startServer(t, bin, env)
	d.mu.Lock()
	d.logs = append(d.logs, second.stderr)
	d.mu.Unlock()
	secondBase := strings.Replace(second.base, "localhost", "127.0.0.1", 1)
	var turn atomic.Int64
	d.load.base = func(string) string { // every other request to the second serve
		if turn.Add(1)%2 == 0 {
			return secondBase
		}
		return d.baseURL()
	}

	d.play(func() {
		for i, m := range cluster.Masters() {
			fault := fmt.Sprintf("CLUSTER FAILOVER %d of master %s", i+1, m)
			d.during(fault)
			time.Sleep(500 * time.Millisecond) // commands in flight
			took := cluster.Failover(m)
			t.Logf("%s: replica promoted and cluster healthy after %s", fault, took.Round(time.Millisecond))
			d.recovered(fault, fault, time.Now())
			d.load.setPhase("between faults")
		}
		m := cluster.MasterOf(relay.Topic("tq:taskqueue", relay.TypeTaskCompleted))
		fault := "kill -9 master " + m
		d.during(fault)
		time.Sleep(500 * time.Millisecond)
		killed := time.Now()
		seen := make(chan string, 1)
		go func() { time.Sleep(time.Second); seen <- d.operatorView() }()
		took := cluster.KillMaster(m)
		t.Logf("%s: operators see 1 s after the kill:\n  %s", fault, <-seen)
		t.Logf("%s: replica promoted after %s (node timeout %s), cluster healthy again after %s",
			fault, took.Round(time.Millisecond), testenv.ClusterNodeTimeout, time.Since(killed).Round(time.Millisecond))
		d.recovered(fault, fault, killed)
		d.load.setPhase("between faults")
	})
	// A failover is an outage of a moment, not an error of the service: no
	// process logs a cluster's "not now" answers at ERROR.
	downs := 0
	for _, l := range d.logs {
		downs += strings.Count(l.String(), "redis is down")
		for _, line := range strings.Split(l.String(), "\n") {
			if strings.Contains(line, "level=ERROR") &&
				(strings.Contains(line, "UNBLOCKED") || strings.Contains(line, "CLUSTERDOWN") || strings.Contains(line, "TRYAGAIN") || strings.Contains(line, "MOVED")) {
				t.Errorf("a failover logged as an error: %s", line)
			}
		}
	}
	t.Logf("the processes logged \"redis is down\" %d times (each fell back to in-process until a ping of every master answered)", downs)
	_ = second.cmd.Process.Signal(syscall.SIGTERM)
	_ = second.cmd.Wait()
	d.checkInvariants("", env["TASKQUEUE_DATABASE_URL"])
}

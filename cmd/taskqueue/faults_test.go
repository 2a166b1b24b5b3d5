package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/ops"
	"github.com/taskqueue/taskqueue/ops/opstest"
)

// The fault-injection suite (issue 12, docs/RELIABILITY.md): the real
// binary's processes — `serve`, and on PostgreSQL a `taskqueue processor`
// beside it — under a light load of players, through faults played for
// real: SIGKILL, the database cut (a TCP proxy refusing), down for longer,
// partitioned (connections held open, nothing forwarded), Redis killed and
// started again empty, the disk full (SQLite's data directory, or the
// tablespace of PostgreSQL's database), a kill in the middle of a
// blue-green rebuild. After each fault every component must be healthy
// again by itself (/readyz 200 and a new task completed: projections live,
// the processor advancing) and no answer may have been a 500, a 503/507
// without Retry-After, or later than the request deadline. At the end, on
// the log and the read models: every acknowledged task is in the log once,
// no other task is, every repetition completed once, the inventory holds
// exactly what the completions granted, and the read models equal a replay
// of the log from zero.
//
// The CI run plays each fault once with short outages. Longer:
//
//	TASKQUEUE_FAULT_LONG=1     3 rounds of each fault, a 60 s outage, 15 s partitions, 30 blips
//	TASKQUEUE_FAULT_ROUNDS=N   N rounds of each fault
//	TASKQUEUE_FAULT_BLIPS=N    N one-second database blips in the blip scenario
//	TASKQUEUE_FAULT_OUTAGE=D   the outage's length (a Go duration)
//
// e.g. TASKQUEUE_FAULT_LONG=1 go test ./cmd/taskqueue -run TestFaultSuite -v -timeout 60m

// faultSettings says how long and how often each fault is played.
type faultSettings struct {
	rounds    int
	blips     int
	outage    time.Duration // database outage, Redis loss, disk full
	partition time.Duration
}

func faultSettingsFromEnv(t *testing.T) faultSettings {
	t.Helper()
	s := faultSettings{rounds: 1, blips: 3, outage: 4 * time.Second, partition: 4 * time.Second}
	if os.Getenv("TASKQUEUE_FAULT_LONG") == "1" {
		s = faultSettings{rounds: 3, blips: 30, outage: time.Minute, partition: 15 * time.Second}
	}
	for name, dst := range map[string]*int{"TASKQUEUE_FAULT_ROUNDS": &s.rounds, "TASKQUEUE_FAULT_BLIPS": &s.blips} {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q is not a positive number", name, v)
			}
			*dst = n
		}
	}
	if v := os.Getenv("TASKQUEUE_FAULT_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("TASKQUEUE_FAULT_OUTAGE=%q is not a positive duration", v)
		}
		s.outage = d
	}
	return s
}

// faultRequestTimeout is TASKQUEUE_REQUEST_TIMEOUT of the suite's
// deployments: shorter than the default, so that partitions stay short.
const faultRequestTimeout = 2 * time.Second

// faultPlayers play during the whole suite but probePlayer, who queues one
// task after each fault to see the service advance again.
var faultPlayers = []string{"fa", "fb", "fc", "fd", "fe", probePlayer}

const probePlayer = "probe"

func TestFaultSuite(t *testing.T) {
	bin := binary(t)
	settings := faultSettingsFromEnv(t)
	common := faultEnv(t)
	t.Run("sqlite", func(t *testing.T) {
		env := clone(common)
		// The data directory on a small file system of its own, to fill.
		dir, tmpfs := smallFileSystem(t, "64m")
		env["TASKQUEUE_DATA_DIR"] = dir
		d := newDeployment(t, bin, env, false)
		d.play(func() {
			for r := 1; r <= settings.rounds; r++ {
				d.killServe(fmt.Sprintf("kill -9 serve, round %d", r))
			}
			if tmpfs {
				for r := 1; r <= settings.rounds; r++ {
					d.diskFull(fmt.Sprintf("disk full %s, round %d", settings.outage, r), dir, settings.outage)
				}
			} else {
				t.Log("disk full not played: no tmpfs could be mounted (needs root)")
			}
			for r := 1; r <= settings.rounds; r++ {
				d.killDuringRebuild(fmt.Sprintf("kill -9 serve mid-rebuild, round %d", r))
				d.killReplayCommand(fmt.Sprintf("kill -9 `taskqueue replay` mid-rebuild, round %d", r))
			}
		})
		d.checkInvariants(filepath.Join(dir, app.SQLiteFileName), "")
	})
	t.Run("postgres+redis", func(t *testing.T) {
		// A server of its own: a partition that catches an open write
		// transaction holds back the horizon of every reader of a
		// server, so on the shared one every other test's subscriptions
		// would stall with it.
		pg := testenv.StartPostgresServer(t)
		// The service's database in a tablespace on a small file system
		// of its own, to fill; the server's WAL stays on the main disk.
		space, tmpfs := postgresSpace(t, pg, "128m")
		dbURL := pg.URL()
		if tmpfs {
			dbURL = databaseIn(t, pg, space)
		}
		proxied, proxy := testenv.ProxyPostgres(t, dbURL)
		rds := testenv.StartRedisServer(t)
		env := faultServicesEnv(t, common, proxied, rds.URL())
		env["TASKQUEUE_PROCESSOR"] = "false" // a `taskqueue processor` process of its own
		d := newDeployment(t, bin, env, true)
		d.play(func() {
			for r := 1; r <= settings.rounds; r++ {
				d.killServe(fmt.Sprintf("kill -9 serve and processor, round %d", r))
			}
			d.blips(fmt.Sprintf("%d database blips of 1 s", settings.blips), proxy, settings.blips)
			for r := 1; r <= settings.rounds; r++ {
				d.databaseOutage(fmt.Sprintf("database outage %s, round %d", settings.outage, r), proxy, settings.outage)
				d.partition(fmt.Sprintf("database partition %s, round %d", settings.partition, r), proxy, settings.partition)
				d.redisLoss(fmt.Sprintf("Redis loss %s, round %d", settings.outage, r), rds, settings.outage)
				d.redisFull(fmt.Sprintf("Redis full %s, round %d", settings.outage, r), rds, settings.outage)
				if tmpfs {
					d.fullFor(fmt.Sprintf("database disk full %s, round %d", settings.outage, r), space, settings.outage)
				}
				d.killDuringRebuild(fmt.Sprintf("kill -9 serve mid-rebuild, round %d", r))
				d.killReplayCommand(fmt.Sprintf("kill -9 `taskqueue replay` mid-rebuild, round %d", r))
			}
			if !tmpfs {
				t.Log("database disk full not played: no tmpfs could be mounted (needs root)")
			}
		})
		d.checkInvariants("", dbURL)
	})
}

// faultEnv is the settings of every deployment of the fault suites.
func faultEnv(t *testing.T) map[string]string {
	return map[string]string{
		"TASKQUEUE_ADDR": "127.0.0.1:0", "TASKQUEUE_CATALOG": tickCatalogFile(t),
		"TASKQUEUE_REQUEST_TIMEOUT":   faultRequestTimeout.String(),
		"TASKQUEUE_RATE_LIMIT_PLAYER": "-1", "TASKQUEUE_RATE_LIMIT_IP": "-1",
		"TASKQUEUE_LOG_LEVEL": "info",
	}
}

// faultServicesEnv is common with PostgreSQL at dbURL and Redis at
// redisURL.
func faultServicesEnv(t *testing.T, common map[string]string, dbURL, redisURL string) map[string]string {
	env := clone(common)
	env["TASKQUEUE_DATA_DIR"] = t.TempDir()
	env["TASKQUEUE_DATABASE_URL"] = dbURL
	env["TASKQUEUE_DATABASE_MAX_CONNS"] = "8"
	env["TASKQUEUE_JWT_SECRET"] = strings.Repeat("f", 32)
	env["TASKQUEUE_REDIS_URL"] = redisURL
	return env
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// postgresSpace mounts a tmpfs of size, owned by the user pg runs as, on
// a new directory that user can reach (unmounted when t ends), for a
// tablespace; tmpfs is false where the process may not mount.
func postgresSpace(t *testing.T, pg *testenv.PostgresServer, size string) (dir string, tmpfs bool) {
	t.Helper()
	info, err := os.Stat(pg.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	owner := info.Sys().(*syscall.Stat_t)
	dir, err = os.MkdirTemp("", "taskqueue-pgspace-") // not t.TempDir: its parent is closed to other users
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	opts := fmt.Sprintf("size=%s,mode=0700,uid=%d,gid=%d", size, owner.Uid, owner.Gid)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		return dir, false
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir, true
}

// databaseIn creates the database taskqueue on pg in a tablespace at dir
// and returns its URL.
func databaseIn(t *testing.T, pg *testenv.PostgresServer, dir string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, stmt := range []string{"CREATE TABLESPACE small_disk LOCATION '" + dir + "'", "CREATE DATABASE taskqueue TABLESPACE small_disk"} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return strings.Replace(pg.URL(), "/postgres?", "/taskqueue?", 1)
}

// smallFileSystem mounts a tmpfs of size on a new directory (unmounted when
// t ends); tmpfs is false, and dir a plain temporary directory, where the
// process may not mount.
func smallFileSystem(t *testing.T, size string) (dir string, tmpfs bool) {
	t.Helper()
	dir = t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		return dir, false
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir, true
}

// deployment is the processes of one backend and the players on them.
type deployment struct {
	t         *testing.T
	bin       string
	env       map[string]string
	separate  bool // a `taskqueue processor` process beside serve
	serve     *serverProcess
	processor *serverProcess
	others    []*serverProcess // more serve processes, on hosts of their own (multihost_test.go)
	admin     string
	load      *playerLoad

	mu   sync.Mutex
	base string
	logs []*testenv.SyncBuffer // of every process started

	failedSeen []string        // "projections failed" seen by the watcher
	probing    []chan struct{} // the probe's commands sent during a fault
	recoveries []string        // one line per fault, for the report
}

func newDeployment(t *testing.T, bin string, env map[string]string, separate bool) *deployment {
	d := &deployment{t: t, bin: bin, env: env, separate: separate}
	d.start()
	var tokens map[string]string
	d.admin, tokens = faultTokens(t, env)
	d.load = newPlayerLoad(t, func(string) string { return d.baseURL() }, tokens, faultRequestTimeout)
	return d
}

// faultTokens mints an admin's token and one for each of faultPlayers.
func faultTokens(t *testing.T, env map[string]string) (admin string, players map[string]string) {
	t.Helper()
	code, adminTok, stderr := runCLI(t, env, "token", "--player", "root", "--role", "admin")
	if code != 0 {
		t.Fatalf("token: %s", stderr)
	}
	players = map[string]string{}
	for _, p := range faultPlayers {
		code, tok, stderr := runCLI(t, env, "token", "--player", p)
		if code != 0 {
			t.Fatalf("token: %s", stderr)
		}
		players[p] = strings.TrimSpace(tok)
	}
	return strings.TrimSpace(adminTok), players
}

func (d *deployment) baseURL() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.base
}

// start starts serve (and the processor process) on the deployment's store.
func (d *deployment) start() {
	d.t.Helper()
	s := startServer(d.t, d.bin, d.env)
	d.mu.Lock()
	d.serve, d.base = s, strings.Replace(s.base, "localhost", "127.0.0.1", 1)
	d.logs = append(d.logs, s.stderr)
	d.mu.Unlock()
	if d.separate {
		p := startBinary(d.t, d.bin, d.env, "probes on ", "processor")
		d.mu.Lock()
		d.processor = p
		d.logs = append(d.logs, p.stderr)
		d.mu.Unlock()
	}
}

// kill sends SIGKILL to every process of the deployment and waits for them.
func (d *deployment) kill() {
	for _, p := range []*serverProcess{d.serve, d.processor} {
		if p != nil {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			_ = p.cmd.Wait()
		}
	}
}

// play runs the load, then scenarios, then lets the players finish and
// every queue run empty.
func (d *deployment) play(scenarios func()) {
	d.t.Helper()
	d.load.start()
	stopWatch := d.watch()
	time.Sleep(2 * time.Second) // warm-up: queues running
	scenarios()
	d.load.setPhase("wind-down")
	d.load.finish()
	stopWatch()
	d.waitQueuesEmpty()
	d.waitReadModelsCaughtUp()
	d.noDeadLetters()
	d.t.Logf("slowest answer %s; %d commands acknowledged", d.load.slowest.Round(time.Millisecond), d.ackedCount())
	for _, r := range d.recoveries {
		d.t.Log(r)
	}
	for _, phase := range d.load.phases() {
		d.t.Logf("players saw, %s: %s", phase, d.load.phaseAnswers(phase))
	}
	d.mu.Lock()
	failed := d.failedSeen
	d.mu.Unlock()
	if len(failed) > 0 {
		d.t.Errorf("projections failed during the run (%d observations), first: %s", len(failed), failed[0])
	}
	// The players' events are all valid: a projection that refused one,
	// even once, took a fault for a failure of the data (or a retired
	// generation's dropped tables for a bad batch).
	logged, refused := 0, 0
	for _, l := range d.logs {
		text := l.String()
		logged += strings.Count(text, "projection failed on an event")
		refused += strings.Count(text, "projection batch failed; isolating the event") + strings.Count(text, "projection refused an event")
	}
	if logged > 0 {
		d.t.Errorf("%d log lines say a projection failed on an event", logged)
	}
	if refused > 0 {
		d.t.Errorf("%d log lines say a projection refused a batch or an event", refused)
	}
	d.t.Logf("projections failed: %d observations by /readyz, %d log lines; %d refusals logged", len(failed), logged, refused)
}

func (d *deployment) ackedCount() int {
	n := 0
	for _, ts := range d.load.ackedTasks() {
		n += len(ts)
	}
	return n
}

// watch asks /readyz of each process every 200 ms until stopped and
// records any "projections failed" (degraded is expected during a fault;
// failed never is).
func (d *deployment) watch() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 5 * time.Second}
		for {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
			for _, base := range d.probeBases() {
				_, b, err := get(client, base+"/readyz")
				if err == nil && strings.Contains(b, "projections failed") {
					d.mu.Lock()
					d.failedSeen = append(d.failedSeen, b)
					d.mu.Unlock()
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// probeBases are the URLs of the processes' probes.
func (d *deployment) probeBases() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []string{d.base}
	for _, p := range append([]*serverProcess{d.processor}, d.others...) {
		if p != nil {
			out = append(out, strings.Replace(p.base, "localhost", "127.0.0.1", 1))
		}
	}
	return out
}

// ready reports whether every process answers /readyz 200, and the bodies.
func (d *deployment) ready() (bool, string) {
	client := &http.Client{Timeout: 5 * time.Second}
	ok, bodies := true, ""
	for _, base := range d.probeBases() {
		status, b, err := get(client, base+"/readyz")
		if err != nil {
			return false, err.Error()
		}
		ok = ok && status == http.StatusOK
		bodies += b + " "
	}
	return ok, bodies
}

// get answers a GET of url: the status and the body.
func get(client *http.Client, url string) (int, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// operatorView is what an operator sees during a fault: /readyz and the
// outage metrics of each process.
func (d *deployment) operatorView() string {
	client := &http.Client{Timeout: 5 * time.Second}
	var out []string
	for _, base := range d.probeBases() {
		status, b, err := get(client, base+"/readyz")
		if err != nil {
			out = append(out, "readyz: "+err.Error())
			continue
		}
		out = append(out, fmt.Sprintf("readyz %d %s", status, strings.TrimSpace(b)))
		if _, b, err = get(client, base+"/metrics"); err != nil {
			continue
		}
		for _, line := range strings.Split(b, "\n") {
			if strings.HasPrefix(line, "taskqueue_component_degraded{") && !strings.HasSuffix(line, " 0") {
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, "\n  ")
}

// recovered waits, from the end of a fault, until every process is ready
// and a task queued then by the probe player completed (the command
// accepted, the processor advancing, the read model live), and records
// how long that took. Nothing is restarted: a component that does not
// come back by itself within 90 s fails the test.
func (d *deployment) recovered(fault, label string, healed time.Time) time.Duration {
	d.t.Helper()
	d.load.setPhase(fault + ": after")
	d.mu.Lock()
	probing := d.probing
	d.probing = nil
	d.mu.Unlock()
	for _, done := range probing {
		<-done
	}
	for {
		ok, bodies := d.ready()
		if ok {
			break
		}
		if time.Since(healed) > 90*time.Second {
			d.t.Fatalf("%s: not ready 90 s after the fault ended (no restart): %s", fault, bodies)
		}
		time.Sleep(100 * time.Millisecond)
	}
	readyAfter := time.Since(healed)
	version, ok := d.load.enqueue(probePlayer, 1)
	if !ok {
		d.t.Fatalf("%s: the probe's command was refused", fault)
	}
	for {
		// At least the enqueue's version: no task then is the task done.
		empty, status, body := d.load.queueEmpty(probePlayer, "?minVersion="+version)
		if empty {
			break
		}
		if time.Since(healed) > 90*time.Second {
			d.t.Fatalf("%s: the probe's task not completed 90 s after the fault ended (queues stalled): %d %s", fault, status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(healed)
	d.recoveries = append(d.recoveries, fmt.Sprintf("%s: ready after %s, a new task completed after %s",
		label, readyAfter.Round(10*time.Millisecond), took.Round(10*time.Millisecond)))
	return took
}

// during counts the players' answers from now on under "<fault>: during",
// and has the probe player send a command meanwhile (retried until it is
// acknowledged, so at least one command meets each fault).
func (d *deployment) during(fault string) {
	d.load.setPhase(fault + ": during")
	done := make(chan struct{})
	go func() { defer close(done); d.load.enqueue(probePlayer, 1) }()
	d.mu.Lock()
	d.probing = append(d.probing, done)
	d.mu.Unlock()
}

func (d *deployment) killServe(fault string) {
	d.during(fault)
	time.Sleep(time.Second) // under load
	killed := time.Now()
	d.kill()
	d.start()
	d.recovered(fault, fault, killed)
	d.load.setPhase("between faults")
}

// blips cuts the database for 1 s n times, 1-2 s apart, and counts the
// processor's stalls: a task queued after a blip not completed 10 s later.
func (d *deployment) blips(fault string, proxy *testenv.TCPProxy, n int) {
	d.during(fault)
	var worst time.Duration
	stalls := 0
	for i := range n {
		proxy.Stop()
		time.Sleep(time.Second)
		if i == 0 {
			d.t.Logf("%s: operators see during a blip:\n  %s", fault, d.operatorView())
		}
		proxy.Start(d.t)
		healed := time.Now()
		took := d.recovered(fault, fmt.Sprintf("%s (blip %d)", fault, i+1), healed)
		worst = max(worst, took)
		if took > 10*time.Second {
			stalls++
		}
		if i+1 < n {
			d.during(fault)
		}
	}
	d.t.Logf("%s: %d blips, worst recovery %s, %d stalls over 10 s", fault, n, worst.Round(10*time.Millisecond), stalls)
	if stalls > 0 {
		d.t.Errorf("%s: the queues stalled after %d of %d blips", fault, stalls, n)
	}
	d.load.setPhase("between faults")
}

func (d *deployment) databaseOutage(fault string, proxy *testenv.TCPProxy, length time.Duration) {
	d.during(fault)
	proxy.Stop()
	time.Sleep(length / 2)
	d.t.Logf("%s: operators see:\n  %s", fault, d.operatorView())
	time.Sleep(length - length/2)
	proxy.Start(d.t)
	d.recovered(fault, fault, time.Now())
	d.load.setPhase("between faults")
}

func (d *deployment) partition(fault string, proxy *testenv.TCPProxy, length time.Duration) {
	d.during(fault)
	proxy.Partition()
	time.Sleep(length / 2)
	d.t.Logf("%s: operators see:\n  %s", fault, d.operatorView())
	time.Sleep(length - length/2)
	proxy.Heal()
	d.recovered(fault, fault, time.Now())
	d.load.setPhase("between faults")
}

func (d *deployment) redisLoss(fault string, rds *testenv.RedisServer, length time.Duration) {
	d.during(fault)
	rds.Stop()
	time.Sleep(length / 2)
	d.t.Logf("%s: operators see:\n  %s", fault, d.operatorView())
	time.Sleep(length - length/2)
	rds.Start() // empty: its streams and consumer groups are gone
	d.recovered(fault, fault, time.Now())
	d.load.setPhase("between faults")
}

// redisFull lowers Redis's maxmemory below what it holds, with the
// noeviction policy, for length: every write is refused ("OOM command not
// allowed"), reads and PING answer. The queues must advance meanwhile, as
// through a Redis loss: the probe's task, queued as the fault starts,
// completes before Redis takes writes again. Then it lifts the limit.
func (d *deployment) redisFull(fault string, rds *testenv.RedisServer, length time.Duration) {
	opts, err := redis.ParseURL(rds.URL())
	if err != nil {
		d.t.Fatal(err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx := context.Background()
	set := func(name, value string) {
		if err := c.ConfigSet(ctx, name, value).Err(); err != nil {
			d.t.Fatalf("redis CONFIG SET %s %s: %v", name, value, err)
		}
	}
	d.during(fault)
	set("maxmemory-policy", "noeviction")
	set("maxmemory", "1")
	time.Sleep(length / 2)
	d.t.Logf("%s: operators see:\n  %s", fault, d.operatorView())
	time.Sleep(length - length/2)
	if !d.probeDone(10 * time.Second) {
		d.t.Errorf("%s: the probe's task did not complete while Redis refused writes (queues stalled)", fault)
	}
	set("maxmemory", "0")
	d.recovered(fault, fault, time.Now())
	d.load.setPhase("between faults")
}

// probeDone waits for the probe's commands sent during the fault to be
// acknowledged, then up to wait more for its queue to run empty, and
// reports whether it did.
func (d *deployment) probeDone(wait time.Duration) bool {
	d.mu.Lock()
	probing := append([]chan struct{}(nil), d.probing...)
	d.mu.Unlock()
	for _, done := range probing {
		<-done
	}
	for end := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
		if empty, _, _ := d.load.queueEmpty(probePlayer, ""); empty {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// diskFull fills the data directory's file system for length, then frees
// the space.
func (d *deployment) diskFull(fault, dir string, length time.Duration) {
	// Empty the WAL first (it is shared by every connection to the file):
	// else the writes of a light load go on in the space it holds already.
	// The server checkpoints in the background too, and a checkpoint that
	// meets another answers busy: wait for the lock, and try again until
	// this one truncated the WAL.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, app.SQLiteFileName)+"?_pragma=busy_timeout(2000)")
	if err != nil {
		d.t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		var busy, walPages, moved int
		if err := db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &walPages, &moved); err != nil {
			d.t.Fatal(err)
		}
		if busy == 0 || attempt == 20 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	db.Close()
	d.fullFor(fault, dir, length)
}

// fullFor fills the file system of dir for length, then frees the space,
// and checks that a command met the full disk (507) meanwhile.
func (d *deployment) fullFor(fault, dir string, length time.Duration) {
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		d.t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for n := len(chunk); n > 0; n /= 2 {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					d.t.Fatal(err)
				}
				break
			}
		}
	}
	f.Close()
	d.during(fault)
	full, before := time.Now(), d.storageFullErrors()
	time.Sleep(length / 2)
	d.t.Logf("%s: operators see:\n  %s", fault, d.operatorView())
	time.Sleep(length - length/2)
	// PostgreSQL's tables may still have room in the pages they hold: the
	// disk stays full until a command was answered 507 or a component
	// counted the full disk as transient (a minute more at most).
	met := func() bool {
		return strings.Contains(d.load.phaseAnswers(fault+": during"), "POST 507") || d.storageFullErrors() > before
	}
	for !met() && time.Since(full) < length+time.Minute {
		time.Sleep(100 * time.Millisecond)
	}
	if err := os.Remove(filler); err != nil {
		d.t.Fatal(err)
	}
	freed := time.Now()
	d.recovered(fault, fault, freed)
	if !met() {
		d.t.Errorf("%s: neither a command nor a component met the full disk (%s; %v storage-full errors counted)",
			fault, d.load.phaseAnswers(fault+": during"), d.storageFullErrors()-before)
	}
	d.load.setPhase("between faults")
}

// storageFullErrors is the sum over the processes of
// taskqueue_transient_errors_total{kind="storage-full"}.
func (d *deployment) storageFullErrors() float64 {
	client := &http.Client{Timeout: 5 * time.Second}
	var sum float64
	for _, base := range d.probeBases() {
		_, b, err := get(client, base+"/metrics")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(b, "\n") {
			if strings.HasPrefix(line, "taskqueue_transient_errors_total{") && strings.Contains(line, `kind="storage-full"`) {
				if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
					sum += v
				}
			}
		}
	}
	return sum
}

// noDeadLetters fails the test if a command was dead-lettered: every
// command of the players is valid, so a dead letter is a transient error
// recorded as a failure.
func (d *deployment) noDeadLetters() {
	d.t.Helper()
	code, body := d.adminCall(http.MethodGet, "/api/admin/deadletters?all=true")
	var page struct {
		DeadLetters []struct {
			Command string `json:"command"`
			Error   string `json:"error"`
		} `json:"deadLetters"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &page) != nil {
		d.t.Fatalf("GET /api/admin/deadletters: %d %s", code, body)
	}
	if n := len(page.DeadLetters); n > 0 {
		d.t.Errorf("%d commands were dead-lettered, first: %s: %s", n, page.DeadLetters[0].Command, page.DeadLetters[0].Error)
	}
}

// projectionState is a projection as GET /api/admin/projections shows it.
type projectionState struct {
	Name       string          `json:"name"`
	Generation string          `json:"generation"`
	State      string          `json:"state"`
	Rebuild    json.RawMessage `json:"rebuild"`
	LagSeconds float64         `json:"lagSeconds"`
}

// rebuilding reports whether a new generation of p is being built.
func (p projectionState) rebuilding() bool {
	return len(p.Rebuild) > 0 && string(p.Rebuild) != "null"
}

// adminProjections returns the serve process's projections (GET
// /api/admin/projections), processor_schedule aside.
func (d *deployment) adminProjections() map[string]projectionState {
	d.t.Helper()
	var out struct {
		Projections []projectionState `json:"projections"`
	}
	for end := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		code, body := d.adminCall(http.MethodGet, "/api/admin/projections")
		if code == http.StatusOK && json.Unmarshal([]byte(body), &out) == nil {
			break
		}
		if time.Now().After(end) {
			d.t.Fatalf("GET /api/admin/projections: %d %s", code, body)
		}
	}
	m := map[string]projectionState{}
	for _, p := range out.Projections {
		if p.Name != "processor_schedule" {
			m[p.Name] = p
		}
	}
	return m
}

// waitReadModelsCaughtUp waits until the serve process's projections have
// no rebuild under way and no event waiting: the players' queues
// run empty in the queue cache (which the commands fill) before the read
// models, which the end of the run compares with a replay, have applied
// the last events.
func (d *deployment) waitReadModelsCaughtUp() {
	d.t.Helper()
	for end := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		behind := ""
		for name, p := range d.adminProjections() {
			if p.rebuilding() || p.LagSeconds > 0 {
				behind = fmt.Sprintf("%s: %s, rebuild %s, lag %.3f s", name, p.State, p.Rebuild, p.LagSeconds)
			}
		}
		if behind == "" {
			return
		}
		if time.Now().After(end) {
			d.t.Fatalf("the read models did not catch up: %s", behind)
		}
	}
}

func (d *deployment) adminCall(method, path string) (int, string) {
	req, _ := http.NewRequest(method, d.baseURL()+path, nil)
	req.Header.Set("Authorization", "Bearer "+d.admin)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// killDuringRebuild starts a blue-green rebuild of every projection
// through the admin API, kills serve (and the processor) while it runs,
// and starts them again: the rebuilds must finish by themselves (a new
// generation serving each projection) and the service recover.
func (d *deployment) killDuringRebuild(fault string) {
	d.during(fault)
	before := d.adminProjections()
	for name := range before {
		if code, body := d.adminCall(http.MethodPost, "/api/admin/projections/"+name+"/rebuild"); code != http.StatusAccepted {
			d.t.Fatalf("%s: rebuild %s: %d %s", fault, name, code, body)
		}
	}
	time.Sleep(100 * time.Millisecond)
	killed := time.Now()
	d.kill()
	d.start()
	d.recovered(fault, fault, killed)
	for end := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		after := d.adminProjections()
		done := true
		for name, b := range before {
			a := after[name]
			done = done && a.Generation != b.Generation && !a.rebuilding() && a.State == "live"
		}
		if done {
			break
		}
		if time.Now().After(end) {
			d.t.Fatalf("%s: the rebuilds did not finish after the restart: before %v, now %v", fault, before, after)
		}
	}
	d.load.setPhase("between faults")
}

// killReplayCommand runs `taskqueue replay --projection all` beside the
// running service and kills it (SIGKILL) once its rebuild began: the
// service keeps serving, and the command run again finishes.
func (d *deployment) killReplayCommand(fault string) {
	d.during(fault)
	replay := startBinary(d.t, d.bin, d.env, "→ ", "replay", "--projection", "all")
	_ = replay.cmd.Process.Signal(syscall.SIGKILL)
	_ = replay.cmd.Wait()
	killed := time.Now()
	d.recovered(fault, fault, killed)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut strings.Builder
	env := d.env
	code := run(ctx, []string{"replay", "--projection", "all"}, strings.NewReader(""), &out, &errOut, func(k string) string { return env[k] })
	if code != 0 || strings.Count(out.String(), "serves") < 3 {
		d.t.Fatalf("%s: replay again: exit %d\n%s\n%s", fault, code, out.String(), errOut.String())
	}
	d.recovered(fault, fault+", and `taskqueue replay` run again to its end", killed)
	d.load.setPhase("between faults")
}

// waitQueuesEmpty waits until every player's queue ran empty (read model).
func (d *deployment) waitQueuesEmpty() {
	d.t.Helper()
	for _, p := range faultPlayers {
		for end := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
			empty, status, body := d.load.queueEmpty(p, "")
			if empty {
				break
			}
			if time.Now().After(end) {
				d.t.Fatalf("the queue of %s did not run empty: %d %s", p, status, body)
			}
		}
	}
}

// checkInvariants stops the processes (SIGTERM) and checks the log and the
// read models: sqlitePath is the SQLite file, else pgURL the database.
func (d *deployment) checkInvariants(sqlitePath, pgURL string) {
	t := d.t
	t.Helper()
	for _, p := range append([]*serverProcess{d.serve, d.processor}, d.others...) {
		if p != nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			_ = p.cmd.Wait()
		}
	}
	env := clone(d.env)
	if pgURL != "" {
		env["TASKQUEUE_DATABASE_URL"] = pgURL
	}
	cfg, err := app.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, closeStore, err := app.OpenEventStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	var all []eventstore.RecordedEvent
	for after := eventstore.Start; ; {
		page, err := store.ReadAll(ctx, after, eventstore.Filter{}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].Position
	}

	// The log against what the players were told.
	type rep struct {
		task   string
		number int
	}
	enqueued := map[string]map[string]int{} // player → task → count
	completed := map[rep]int{}
	granted := map[string]int64{} // player → logs granted
	for _, e := range all {
		player := strings.TrimPrefix(e.Stream, domain.StreamPrefix)
		var data struct {
			TaskID  string           `json:"taskId"`
			Count   int              `json:"count"`
			Number  int              `json:"number"`
			Granted map[string]int64 `json:"granted"`
		}
		if err := json.Unmarshal(e.Data, &data); err != nil {
			t.Fatalf("event %s: %v", e.ID, err)
		}
		switch e.Type {
		case string(domain.TypeTaskEnqueued):
			if enqueued[player] == nil {
				enqueued[player] = map[string]int{}
			}
			if _, twice := enqueued[player][data.TaskID]; twice {
				t.Errorf("task %s of %s enqueued twice", data.TaskID, player)
			}
			enqueued[player][data.TaskID] = data.Count
		case string(domain.TypeRepetitionCompleted):
			completed[rep{data.TaskID, data.Number}]++
			granted[player] += data.Granted["logs"]
		case string(domain.TypeTaskFailed), string(domain.TypeTaskRemoved), string(domain.TypeQueueStopped):
			t.Errorf("%s of %s: the players never asked for it (%s)", e.Type, player, e.Data)
		}
	}
	acked := d.load.ackedTasks()
	tasks, reps := 0, 0
	for _, p := range faultPlayers {
		if len(acked[p]) != len(enqueued[p]) {
			t.Errorf("%s: %d tasks acknowledged, %d enqueued in the log", p, len(acked[p]), len(enqueued[p]))
		}
		var want int64
		for _, a := range acked[p] {
			count, ok := enqueued[p][a.TaskID]
			if !ok {
				t.Errorf("%s: acknowledged task %s is not in the log (lost)", p, a.TaskID)
				continue
			}
			if count != a.Count {
				t.Errorf("%s: task %s has count %d in the log, %d acknowledged", p, a.TaskID, count, a.Count)
			}
			for n := 1; n <= count; n++ {
				if c := completed[rep{a.TaskID, n}]; c != 1 {
					t.Errorf("%s: repetition %d of %s completed %d times", p, n, a.TaskID, c)
				}
			}
			want += int64(count)
			tasks++
			reps += count
		}
		if granted[p] != want {
			t.Errorf("%s: %d logs granted by the log's completions, %d repetitions acknowledged", p, granted[p], want)
		}
	}

	// The read models against a replay of the whole log from zero.
	var live opstest.Side
	if sqlitePath != "" {
		live = opstest.Side{Name: "live", DB: openSQLiteReadModels(t, sqlitePath)}
	} else {
		live = opstest.Side{Name: "live", DB: openPostgresReadModels(t, pgURL)}
	}
	head, err := store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	into := filepath.Join(t.TempDir(), "replay.db")
	if _, err := ops.ReplayTo(ctx, store, io.Discard, ops.ReplayToOptions{
		ReplayOptions: ops.ReplayOptions{Projection: ops.AllProjections},
		To:            ops.Moment{Position: head, HasPosition: true}, Into: into,
	}); err != nil {
		t.Fatal(err)
	}
	var players []domain.PlayerID
	for _, p := range faultPlayers {
		players = append(players, domain.PlayerID(p))
	}
	slices.Sort(players)
	from, to := time.Now().Add(-24*time.Hour), time.Now().Add(24*time.Hour)
	got := opstest.SameReadModels(t, live, opstest.Side{Name: "replay", DB: openSQLiteReadModels(t, into)}, players, from, to)
	if got.HistoryEntries < tasks {
		t.Errorf("%d history entries for %d tasks completed", got.HistoryEntries, tasks)
	}
	if t.Failed() {
		return
	}
	t.Logf("invariants held over %d events: %d tasks acknowledged and in the log once, %d repetitions completed once each, read models equal a replay (%d history entries)",
		len(all), tasks, reps, got.HistoryEntries)
}

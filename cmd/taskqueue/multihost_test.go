package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/internal/testenv"
)

// TestSeveralHosts (issue 19, "Several hosts, real network faults";
// docs/RELIABILITY.md, "Several hosts"): the deployment on five hosts of a
// virtual network on this machine (testenv.Network: network namespaces on
// a bridge) — PostgreSQL and Redis on "db", `serve` on "serve1" (with the
// processor in its process) and on "serve2" (without), `taskqueue
// processor` on "proc" — under the fault suite's load, players fa–fc on
// serve1 and fd, fe and the probe on serve2. Two faults are cut with
// nftables rules that drop packets (held connections see a partition, not
// a refusal):
//
//   - proc cut off from PostgreSQL while it holds claims on repetitions not
//     yet completed (mid-batch), for longer than the claim TTL: each of
//     those repetitions must be completed by another instance within
//     ClaimTTL + 1 s of the cut (docs/EVENTS.md, "Failover"; plus the
//     suite's slack for this loaded machine); once healed, proc claims and
//     completes repetitions again by itself;
//   - serve2 cut off from Redis: its players keep working on the
//     in-process fallbacks (docs/API.md, /readyz: the instance stays
//     ready, `redis` degraded): every answer they get during the cut is a
//     success, and a task queued on serve2 then completes.
//
// Then the suite's invariants hold on the log and the read models: every
// acknowledged task in the log once, every repetition completed once, the
// read models equal to a replay; and for the players of the bursts queued
// before each cut of proc (multihost_log_test.go), every acknowledged task
// in the log once, and no repetition of the log completed twice.
func TestSeveralHosts(t *testing.T) {
	bin := binary(t)
	network := testenv.StartNetwork(t)
	db := network.AddHost("db")
	hosts := map[string]*testenv.Host{}
	for _, name := range []string{"serve1", "serve2", "proc"} {
		hosts[name] = network.AddHost(name)
	}
	pg := testenv.StartPostgresServerWith(t, testenv.PostgresOptions{Host: db})
	rds := testenv.StartRedisServerOn(t, db)
	env := faultServicesEnv(t, faultEnv(t), pg.URL(), rds.URL())
	on := func(h *testenv.Host, processor, marker string, args ...string) *serverProcess {
		e := clone(env)
		e["TASKQUEUE_ADDR"] = h.IP + ":0"
		e["TASKQUEUE_PROCESSOR"] = processor
		return startBinary(t, "ip", e, marker, append([]string{"netns", "exec", h.Netns, bin}, args...)...)
	}
	serve1 := on(hosts["serve1"], "true", "listening on ", "serve") // migrates first
	serve2 := on(hosts["serve2"], "false", "listening on ", "serve")
	proc := on(hosts["proc"], "true", "probes on ", "processor")
	t.Logf("hosts: db %s, serve1 %s, serve2 %s, proc %s", db.IP, serve1.base, serve2.base, proc.base)
	t.Cleanup(func() {
		if t.Failed() {
			for name, p := range map[string]*serverProcess{"serve1": serve1, "serve2": serve2, "proc": proc} {
				lines := strings.Split(p.stderr.String(), "\n")
				t.Logf("the last lines of %s's log:\n%s", name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})

	d := &deployment{t: t, bin: bin, env: env, separate: true, serve: serve1, processor: proc,
		others: []*serverProcess{serve2}, base: serve1.base,
		logs: []*testenv.SyncBuffer{serve1.stderr, serve2.stderr, proc.stderr}}
	var tokens map[string]string
	d.admin, tokens = faultTokens(t, env)
	onServe2 := map[string]bool{"fd": true, "fe": true, probePlayer: true}
	d.load = newPlayerLoad(t, func(player string) string {
		if onServe2[player] {
			return serve2.base
		}
		return serve1.base
	}, tokens, faultRequestTimeout)

	pool, err := pgxpool.New(context.Background(), pg.URL()) // the test's own namespace: never cut
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	m := &multiHost{t: t, d: d, network: network, db: db, hosts: hosts, pool: pool, serve2: serve2,
		burstTokens: map[string]string{}, burstTasks: map[string]bool{}}
	for i := range burstPlayers {
		player := fmt.Sprintf("burst%02d", i)
		code, tok, stderr := runCLI(t, env, "token", "--player", player)
		if code != 0 {
			t.Fatalf("token: %s", stderr)
		}
		m.burstTokens[player] = strings.TrimSpace(tok)
	}
	d.play(func() {
		m.cutProcessorFromDatabase("proc cut off from PostgreSQL")
		m.cutServeFromRedis("serve2 cut off from Redis", 5*time.Second)
	})
	d.checkInvariants("", pg.URL())
	m.checkBursts()
}

// multiHost is TestSeveralHosts's deployment and network.
type multiHost struct {
	t       *testing.T
	d       *deployment
	network *testenv.Network
	db      *testenv.Host
	hosts   map[string]*testenv.Host
	pool    *pgxpool.Pool
	serve2  *serverProcess

	burstTokens map[string]string // burst player → token
	burstTasks  map[string]bool   // tasks of the bursts acknowledged (201)
}

// burstPlayers queue one repetition each, all at once, before each cut of
// the processor (burst): they fall due together, and the batch that
// claims them keeps its claims in flight long enough for a cut to land
// in the middle of it.
const burstPlayers = 40

// claimTTL is the processor's default ClaimTTL (docs/EVENTS.md,
// "Failover"), which the deployment keeps.
const claimTTL = 5 * time.Second

// heldClaim is a repetition the cut processor had claimed.
type heldClaim struct {
	task   string
	number int
}

// cutProcessorFromDatabase cuts proc's host off from PostgreSQL (port
// 5432; Redis stays reachable) mid-batch: when proc holds a live claim on
// a repetition not yet completed. Should the cut catch none (the batch
// done in the few milliseconds the cut takes to install), it is healed at
// once and played again, up to 6 times; the last is held whatever it
// caught. The cut is held for 2 × ClaimTTL (ended sooner, after ClaimTTL
// + 2 s, once every repetition caught is completed), then healed. Checked:
// each repetition caught is completed by another instance within
// ClaimTTL + 1 s of the cut (docs/EVENTS.md, "Failover", plus the suite's
// slack); no repetition due during the cut waited longer than that; once
// healed, proc claims repetitions again by itself.
func (m *multiHost) cutProcessorFromDatabase(fault string) {
	t := m.t
	owner := fmt.Sprintf("%%-%d-%%", m.d.processor.cmd.Process.Pid) // processor.Config.Owner: host-pid-random
	bound := claimTTL + time.Second + allowedSlack
	const attempts = 6
	for attempt := 1; ; attempt++ {
		for burst := 1; ; burst++ {
			m.burst()
			if m.waitHeld(owner, 3*time.Second) {
				break
			}
			if burst == 10 {
				t.Fatalf("%s: proc claimed none of 10 bursts of due repetitions", fault)
			}
		}
		cut := m.network.Cut(m.hosts["proc"], m.db, 5432)
		cutAt := time.Now()
		m.d.during(fault)
		time.Sleep(300 * time.Millisecond) // statements that reached the server before the cut end
		held := m.heldAt(owner, cutAt)
		if len(held) == 0 && attempt < attempts {
			cut.Heal()
			m.d.recovered(fault, fmt.Sprintf("%s (attempt %d: no repetition in flight caught, healed at once)", fault, attempt), time.Now())
			continue
		}
		moved := map[heldClaim]time.Duration{}
		view := ""
		for time.Since(cutAt) < claimTTL+2*time.Second || (len(moved) < len(held) && time.Since(cutAt) < 2*claimTTL) {
			if view == "" && time.Since(cutAt) > 2*time.Second {
				view = m.d.operatorView() // takes a few seconds: proc's checks wait for their deadlines
			}
			for _, h := range held {
				if _, ok := moved[h]; !ok {
					if at, ok := m.completedAt(h); ok {
						moved[h] = at.Sub(cutAt)
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("%s (attempt %d): operators see:\n  %s", fault, attempt, view)
		overdue := m.overdue(time.Now().Add(-bound))
		cut.Heal()
		healed := time.Now()
		completions, latest := m.lateness(cutAt, healed)
		m.d.recovered(fault, fmt.Sprintf("%s (attempt %d, %s)", fault, attempt, healed.Sub(cutAt).Round(100*time.Millisecond)), healed)
		back := m.claimsAgain(owner, healed)

		var slowest time.Duration
		for _, h := range held {
			took, ok := moved[h]
			if !ok {
				t.Errorf("%s: repetition %d of %s, claimed by proc, not completed by another instance while the cut held (%s)",
					fault, h.number, h.task, healed.Sub(cutAt).Round(100*time.Millisecond))
				continue
			}
			slowest = max(slowest, took)
		}
		if slowest > bound {
			t.Errorf("%s: a claim of proc moved %s after the cut, past %s (ClaimTTL + 1 s + slack)", fault, slowest.Round(10*time.Millisecond), bound)
		}
		if latest > bound {
			t.Errorf("%s: a repetition due during the cut was completed %s after its due time (or the cut), past %s", fault, latest.Round(10*time.Millisecond), bound)
		}
		if overdue > 0 {
			t.Errorf("%s: %d repetitions not completed %s after their due time, before the heal", fault, overdue, bound)
		}
		caught := fmt.Sprintf("%d repetitions claimed by proc caught in flight, completed by another instance within %s of the cut",
			len(held), slowest.Round(10*time.Millisecond))
		if len(held) == 0 {
			caught = fmt.Sprintf("no repetition in flight caught in %d cuts", attempts)
		}
		summary := fmt.Sprintf("%s (attempt %d): %s; %d repetitions completed during the cut, the latest %s after its due time (bound %s); proc claiming again %s after the heal",
			fault, attempt, caught, completions, latest.Round(10*time.Millisecond), bound, back.Round(10*time.Millisecond))
		t.Log(summary)
		m.d.recoveries = append(m.d.recoveries, summary)
		m.d.load.setPhase("between faults")
		return
	}
}

// cutServeFromRedis cuts serve2's host off from Redis (port 6379; the
// database stays reachable) for length. Meanwhile serve2 must stay ready
// with `redis` degraded, every answer to the players must be a success,
// and a task the probe queues on serve2 must be acknowledged and completed.
func (m *multiHost) cutServeFromRedis(fault string, length time.Duration) {
	t := m.t
	base := strings.Replace(m.serve2.base, "localhost", "127.0.0.1", 1)
	m.d.load.setPhase(fault + ": during")
	cut := m.network.Cut(m.hosts["serve2"], m.db, 6379)
	cutAt := time.Now()
	version, ok := m.d.load.enqueue(probePlayer, 1)
	if !ok {
		t.Fatalf("%s: the probe's command on serve2 was refused", fault)
	}
	acked := time.Since(cutAt)
	for {
		empty, status, body := m.d.load.queueEmpty(probePlayer, "?minVersion="+version)
		if empty {
			break
		}
		if time.Since(cutAt) > length {
			t.Fatalf("%s: the probe's task on serve2 not completed %s into the cut: %d %s", fault, length, status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	done := time.Since(cutAt)
	degraded := ""
	client := &http.Client{Timeout: 5 * time.Second}
	for time.Since(cutAt) < length {
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			t.Errorf("%s: serve2 /readyz: %v", fault, err)
			break
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: serve2 /readyz %d during the cut, want 200 (Redis is optional): %s", fault, resp.StatusCode, b)
		}
		if degraded == "" && strings.Contains(string(b), `"redis":"degraded`) {
			degraded = fmt.Sprintf("%s into the cut", time.Since(cutAt).Round(10*time.Millisecond))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if degraded == "" {
		t.Errorf("%s: serve2's /readyz never said redis degraded during the %s cut", fault, length)
	}
	t.Logf("%s: operators see:\n  %s", fault, m.d.operatorView())
	cut.Heal()
	m.d.recovered(fault, fault, time.Now())
	answers := m.d.load.phaseAnswers(fault + ": during")
	for _, bad := range []string{" 5", "refused", "cut"} {
		if strings.Contains(answers, bad) {
			t.Errorf("%s: the players saw %s", fault, answers)
			break
		}
	}
	m.d.recoveries = append(m.d.recoveries, fmt.Sprintf("%s: a task queued on serve2 acknowledged %s and completed %s into the cut; /readyz said redis degraded %s; players saw %s",
		fault, acked.Round(10*time.Millisecond), done.Round(10*time.Millisecond), degraded, answers))
	m.d.load.setPhase("between faults")
}

package relay

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults/faultstest"
	"github.com/taskqueue/taskqueue/internal/testenv"
	"github.com/taskqueue/taskqueue/internal/testreadside"
	"github.com/taskqueue/taskqueue/internal/teststore"
	"github.com/taskqueue/taskqueue/processor"
)

// published records every message of every relay instance, with when.
type published struct {
	mu    sync.Mutex
	uuids map[string]bool
	at    []publishAt
}

type publishAt struct {
	instance string
	at       time.Time
}

// instancePublisher is one relay instance's publisher.
type instancePublisher struct {
	p        *published
	instance string
}

func (ip instancePublisher) Publish(_ string, msgs ...*message.Message) error {
	ip.p.mu.Lock()
	defer ip.p.mu.Unlock()
	for _, m := range msgs {
		ip.p.uuids[m.UUID] = true
		ip.p.at = append(ip.p.at, publishAt{ip.instance, time.Now()})
	}
	return nil
}

func (instancePublisher) Close() error { return nil }

// during returns the instances that published between from and to.
func (p *published) during(from, to time.Time) map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for _, a := range p.at {
		if a.at.After(from) && a.at.Before(to) {
			out[a.instance]++
		}
	}
	return out
}

// The relay's database goes away while two instances compete for the
// relay lease and another instance keeps writing to the log:
//
//   - lease-refused: only the lease's database is cut (refused) for 3 s,
//     twice the lease (TTL 1.5 s); the holder
//     could still read and publish but cannot renew its lease, so it stops
//     publishing before the lease expires, and nobody publishes until the
//     database is back;
//   - lease-partitioned: the same through a partition (connections held
//     open, nothing answered): the renewal runs out of time instead of
//     hanging, and the holder stops just the same;
//   - all-refused: the lease, the checkpoint and the log are one database
//     (as deployed), cut for 2 s, shorter than the lease (TTL 9 s): the
//     holder keeps it, and its relay's reads fail and are retried.
//
// Afterwards exactly one instance relays again (never two at once), the
// checkpoint never went back and reaches the head, and every integration
// event of the log was published (at least once); each instance logs one
// line when the outage starts and one when it ends, and tells the
// Observer.
func TestRelayThroughDatabaseOutages(t *testing.T) {
	if testing.Short() {
		t.Skip("outages of several seconds")
	}
	t.Parallel() // with the other long fault tests
	for _, mode := range []string{"lease-refused", "lease-partitioned", "all-refused"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			runRelayOutage(t, mode)
		})
	}
}

func runRelayOutage(t *testing.T, mode string) {
	ttl, outage := 1500*time.Millisecond, 3*time.Second
	if mode == "all-refused" {
		ttl, outage = 9*time.Second, 2*time.Second
	}
	var url string
	if mode == "lease-partitioned" {
		url = testenv.StartPostgresServer(t).URL() // a partition holds back the whole server's horizon
	} else {
		url = teststore.PostgresURL(t)
	}
	proxied, proxy := testenv.ProxyPostgres(t, url)
	direct := testreadside.Postgres(t, url, 2)
	h := commands(t, direct, processor.SystemClock{}, domain.Rules{})

	// The writer: another instance, never cut.
	wctx, stopWriter := context.WithCancel(context.Background())
	var writes sync.WaitGroup
	writes.Go(func() {
		for i := 0; wctx.Err() == nil; i++ {
			p := fmt.Sprintf("w%d", i%4)
			req := command.Request{PlayerID: p, Actor: p}
			res, err := h.EnqueueTask.Handle(wctx, command.EnqueueTask{Request: req, Type: "chop-wood", Count: 1})
			if err == nil {
				_, err = h.RemoveTask.Handle(wctx, command.RemoveTask{Request: req, TaskID: string(res.Task.TaskID)})
			}
			if err != nil && wctx.Err() == nil {
				t.Errorf("write: %v", err)
				return
			}
			time.Sleep(30 * time.Millisecond)
		}
	})
	t.Cleanup(func() { stopWriter(); writes.Wait() })

	pub := &published{uuids: map[string]bool{}}
	var running, most atomic.Int32
	recs := map[string]*faultstest.Recorder{}
	logs := map[string]*logBuffer{}
	var relays sync.WaitGroup
	rctx, stopRelays := context.WithCancel(context.Background())
	for _, name := range []string{"a", "b"} {
		viaProxy := testreadside.Postgres(t, proxied, 2)
		leaseDB, relayStore, relayDB := viaProxy.DB, direct.Store, direct.DB
		if mode == "all-refused" {
			relayStore, relayDB = viaProxy.Store, viaProxy.DB
		}
		recs[name], logs[name] = faultstest.NewRecorder(), &logBuffer{}
		log := logs[name].logger()
		r, err := New(Config{Store: relayStore, DB: relayDB, Publisher: instancePublisher{pub, name},
			Observer: recs[name], Logger: log, RetryDelay: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		relays.Go(func() {
			_ = RunLeased(rctx, LeaseConfig{DB: leaseDB, Name: LeaseName, Owner: name, TTL: ttl, Observer: recs[name], Logger: log},
				func(ctx context.Context) error {
					n := running.Add(1)
					defer running.Add(-1)
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					return r.Run(ctx)
				})
		})
	}
	t.Cleanup(func() { stopRelays(); relays.Wait() })

	// The checkpoint never goes back.
	checker, _ := New(Config{Store: direct.Store, DB: direct.DB, Publisher: instancePublisher{&published{uuids: map[string]bool{}}, "x"}})
	var back atomic.Value
	cctx, stopChecking := context.WithCancel(context.Background())
	var checking sync.WaitGroup
	checking.Go(func() {
		var last eventstore.Position
		for cctx.Err() == nil {
			if cp, err := checker.Checkpoint(cctx); err == nil {
				if cp.Less(last) {
					back.Store(fmt.Sprintf("checkpoint went back from %s to %s", last, cp))
				}
				last = cp
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Cleanup(func() { stopChecking(); checking.Wait() })

	holder := func() string {
		h, err := LeaseHolder(context.Background(), direct.DB, LeaseName, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	testenv.WaitUntil(t, waitDeadline, "one instance relaying", func() (bool, error) {
		return holder() != "" && running.Load() == 1 && len(pub.during(time.Now().Add(-time.Second), time.Now())) > 0, nil
	})

	cut, restored := time.Time{}, false
	t.Cleanup(func() {
		if !restored {
			proxy.Heal()
			proxy.Start(t)
		}
	})
	if mode == "lease-partitioned" {
		proxy.Partition()
	} else {
		proxy.Stop()
	}
	cut = time.Now()
	time.Sleep(outage)
	if mode == "lease-partitioned" {
		proxy.Heal()
	} else {
		proxy.Start(t)
	}
	restored = true
	back1 := time.Now()
	// Nobody relays once the holder's lease could not be renewed: it stops
	// at most TTL·2/3 after its last renewal, which was at most TTL/3
	// before the cut (a little slack for the scheduler).
	if mode != "all-refused" {
		if got := pub.during(cut.Add(ttl+200*time.Millisecond), back1); len(got) > 0 {
			t.Errorf("published while nobody could hold the lease: %v", got)
		}
	}

	// After the outage one instance relays again, and catches up.
	testenv.WaitUntil(t, waitDeadline, "one instance relaying again", func() (bool, error) {
		return holder() != "" && running.Load() == 1 && len(pub.during(back1, time.Now())) > 0, nil
	})
	time.Sleep(ttl) // more events after the outage
	stopWriter()
	writes.Wait()
	head, err := direct.Store.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitUntil(t, waitDeadline, "the checkpoint at the head", func() (bool, error) {
		cp, err := checker.Checkpoint(context.Background())
		return !cp.Less(head), err
	})
	// Every integration event of the log was published.
	all := &published{uuids: map[string]bool{}}
	replay, err := New(Config{Store: direct.Store, DB: direct.DB, Publisher: instancePublisher{all, "replay"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replay.Republish(context.Background(), eventstore.Start); err != nil {
		t.Fatal(err)
	}
	pub.mu.Lock()
	missing := 0
	for id := range all.uuids {
		if !pub.uuids[id] {
			missing++
		}
	}
	published := len(pub.at)
	pub.mu.Unlock()
	if missing > 0 {
		t.Errorf("%d of %d integration events never published", missing, len(all.uuids))
	}
	if most.Load() != 1 {
		t.Errorf("%d instances relayed at once", most.Load())
	}
	if msg, _ := back.Load().(string); msg != "" {
		t.Error(msg)
	}
	// Each instance: one line when an outage starts and one when it ends,
	// of its lease (both ask during the outage) and, with the log cut, of
	// the holder's relay (the other instance's relay never ran into it).
	for name, log := range logs {
		var components []string
		for _, c := range []string{"lease " + LeaseName, "relay integration"} {
			// Both ask for the lease during a lease outage; with a long
			// lease (all-refused) one may not have asked in the 2 s, and
			// only the holder's relay reads the log.
			if recs[name].Errors(c) > 0 || c != "relay integration" && mode != "all-refused" {
				components = append(components, c)
			}
		}
		for _, c := range components {
			testenv.WaitUntil(t, waitDeadline, name+": the end of the outage of "+c, func() (bool, error) { return log.count(outageEnded(c)) > 0, nil })
			if n, m := log.count(outageStarted(c)), log.count(outageEnded(c)); n != 1 || m != 1 {
				t.Errorf("%s: %d lines for the start and %d for the end of the outage of %s, want 1 and 1:\n%s", name, n, m, c, log.String())
			}
			if got := recs[name].Transitions(c); len(got) != 2 || !got[0] || got[1] {
				t.Errorf("%s: the Observer heard %s degraded %v, want true then false", name, c, got)
			}
		}
	}
	if mode == "all-refused" && recs["a"].Errors("relay integration")+recs["b"].Errors("relay integration") == 0 {
		t.Error("the relay never failed to read the log: the outage missed it")
	}
	t.Logf("%d messages published for %d integration events; the database was away %s", published, len(all.uuids), back1.Sub(cut).Round(time.Millisecond))
}

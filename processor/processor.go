package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/projections"
)

// Processor advances every running queue on time: it keeps the schedule
// projection up to date, claims the due repetitions in batches and sends
// their completions through the watermill command bus, whose handlers run
// the command handlers of package command. Build one with New, run it with
// Run. Its methods are safe for concurrent use.
type Processor struct {
	cfg      Config
	runner   *projections.Runner
	handlers *command.Handlers // clock: cfg.Clock
	capped   *command.Handlers // clock: pinned, for StopOfflineQueue
	pinned   pinnedClock
	capMu    sync.Mutex // one StopOfflineQueue at a time (it pins the clock)
	dead     *DeadLetters

	pubMu sync.Mutex
	pub   message.Publisher
	bus   *bus

	// The outages of the due loop's database calls, of the commands on
	// the bus, and (with Redis) of the command streams.
	loopOutage, cmdOutage, redisOutage *faults.Outage

	sent, completed, stopped atomic.Int64

	// strays are the claims the due loop must release before it claims
	// again (its goroutine's alone).
	strays strayClaims
}

// pinnedClock returns the time it was set to.
type pinnedClock struct {
	mu sync.Mutex
	at time.Time
}

func (p *pinnedClock) now() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.at
}

func (p *pinnedClock) set(t time.Time) {
	p.mu.Lock()
	p.at = t
	p.mu.Unlock()
}

// New checks cfg and builds a Processor; nothing runs until Run.
func New(cfg Config) (*Processor, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Processor{cfg: cfg}
	outage := func(component string) *faults.Outage {
		return faults.NewOutage(faults.OutageConfig{
			Component: component, Logger: cfg.Logger.With("owner", cfg.Owner),
			Observer: cfg.Observer, Max: cfg.ErrorBackoffMax,
		})
	}
	p.loopOutage = outage("processor due loop")
	p.cmdOutage = outage("processor commands")
	p.redisOutage = outage("processor redis")
	// Optimistic: the processor makes most of its streams' writes, and
	// with a shared cache it sees the others of this process too.
	var err error
	if cfg.Queues != nil {
		p.handlers = command.HandlersOn(cfg.Queues.Share(cfg.Clock.Now, true))
	} else {
		cc := cfg.Commands
		cc.Clock, cc.Optimistic = cfg.Clock.Now, true
		if p.handlers, err = command.NewHandlers(cfg.Store, cc); err != nil {
			return nil, fmt.Errorf("processor: %w", err)
		}
	}
	pc := cfg.Commands
	pc.Clock = p.pinned.now
	pc.CacheSize = 64
	if p.capped, err = command.NewHandlers(cfg.Store, pc); err != nil {
		return nil, fmt.Errorf("processor: %w", err)
	}
	p.runner, err = projections.NewRunner(projections.Config{
		Store:       cfg.Store,
		DB:          cfg.DB,
		Projections: []projections.Projection{Schedule{}},
		// The due loop claims only committed rows: a cold start's first
		// due queues are claimed after the first 1,000 events, not after a
		// 16,384-event catch-up batch (seconds at 10,000 due queues).
		SmallCatchUp: true,
		Logger:       cfg.Logger,
		Observer:     cfg.Observer,
		Now:          cfg.Clock.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("processor: schedule runner: %w", err)
	}
	p.dead = NewDeadLetters(cfg.DB, cfg.Clock)
	p.dead.pub = func() message.Publisher {
		p.pubMu.Lock()
		defer p.pubMu.Unlock()
		return p.pub
	}
	return p, nil
}

// Owner is the name of this instance in its claims and leases.
func (p *Processor) Owner() string { return p.cfg.Owner }

// DeadLetters returns the processor's dead letter queue (list and retry).
func (p *Processor) DeadLetters() *DeadLetters { return p.dead }

// Advancing reports why queues may not be advancing on this instance: an
// error naming each outage the processor is waiting through (its due loop
// cut off from the database, its commands failing to append), since when
// and the last error; nil when none is under way. (While Redis is away the
// due loop runs its commands in this process: queues advance.) The processor resumes by itself;
// /readyz shows this as degraded ("processorOutage"), not as not ready.
func (p *Processor) Advancing(context.Context) error {
	var errs []error
	for _, o := range []*faults.Outage{p.loopOutage, p.cmdOutage} {
		if since, last, down := o.Down(); down {
			errs = append(errs, fmt.Errorf("%s: waiting through an outage since %s: %w", o.Component(), since.UTC().Format(time.RFC3339), last))
		}
	}
	return errors.Join(errs...)
}

// Runner returns the runner of the schedule projection (its Status shows
// the schedule's lag).
func (p *Processor) Runner() *projections.Runner { return p.runner }

// Stats counts what this instance did since it started.
type Stats struct {
	// Sent is the number of commands the due loop sent.
	Sent int64
	// Completed is the number of CompleteRepetition commands handled here
	// that appended events.
	Completed int64
	// Stopped is the number of queues stopped at the offline cap.
	Stopped int64
}

// Stats returns the counters of this instance.
func (p *Processor) Stats() Stats {
	return Stats{Sent: p.sent.Load(), Completed: p.completed.Load(), Stopped: p.stopped.Load()}
}

// Run runs the schedule projection, the command handlers and the due loop
// until ctx ends, then shuts down gracefully: it stops claiming, lets the
// commands in flight finish, releases its claims and returns nil. It
// returns an error only when it cannot start for a permanent reason; while
// Redis is away it keeps trying to start the command bus.
func (p *Processor) Run(ctx context.Context) error {
	log := p.cfg.Logger.With("component", "processor", "owner", p.cfg.Owner)
	runCtx, stopRunner := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { _ = p.runner.Run(runCtx) })
	b, routerDone, err := p.startBus(ctx, runCtx)
	if b == nil {
		stopRunner()
		wg.Wait()
		return err
	}
	wg.Go(func() {
		if err := <-routerDone; err != nil {
			log.Error("command router stopped with an error", "err", err)
		}
	})
	stopping := context.AfterFunc(ctx, b.stop)
	defer stopping()
	p.pubMu.Lock()
	p.pub, p.bus = b.pub, b
	p.pubMu.Unlock()
	log.Info("processor started", "partitions", p.cfg.Partitions, "redis", p.cfg.Redis != nil)
	if p.cfg.Redis != nil {
		wg.Add(1)
		go func() { defer wg.Done(); p.tendRedis(runCtx, b, log) }()
	}

	p.loop(ctx, b)

	// Graceful shutdown: the loop no longer claims; the router waits for
	// the commands in flight; then the claims are released.
	p.pubMu.Lock()
	p.pub, p.bus = nil, nil
	p.pubMu.Unlock()
	if err := b.close(); err != nil {
		log.Warn("closing the command bus", "err", err)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	n, err := releaseClaims(rctx, p.cfg.DB, p.cfg.Owner)
	if err != nil {
		log.Warn("claims not released; they expire by themselves", "err", err)
	}
	stopRunner()
	wg.Wait()
	if p.cfg.Redis != nil {
		// Its consumers are gone (and tendRedis, which kept them alive):
		// the messages they read and did not finish are taken by the
		// other instances at once.
		b.dead(rctx)
	}
	log.Info("processor stopped", "claimsReleased", n)
	return nil
}

// startBus builds the command bus and runs its router (until runCtx ends;
// the returned channel receives what the router's Run returned), again and
// again while it cannot start for a transient reason — Redis away when
// the processor starts: its consumer groups cannot be created — waiting
// the Redis outage's backoff in between. It returns a nil bus when ctx
// ended first (and a nil error) or when the bus failed for a permanent
// reason.
func (p *Processor) startBus(ctx, runCtx context.Context) (*bus, <-chan error, error) {
	for {
		b, err := newBus(&p.cfg, p.dead, commandHandlers{complete: p.handleComplete, batch: p.handleBatch, stop: p.handleStop}, p.cmdOutage, p.redisOutage)
		if err != nil {
			return nil, nil, fmt.Errorf("processor: %w", err)
		}
		if p.cfg.Redis != nil {
			// Alive before the first read, so that no other instance
			// takes this one's messages for a dead consumer's.
			b.heartbeat(ctx)
		}
		done := make(chan error, 1)
		go func() { done <- b.router.Run(runCtx) }()
		// Even when ctx ends first: a watermill router closed while it
		// still starts its handlers waits its whole CloseTimeout (30 s).
		select {
		case <-b.router.Running():
			return b, done, nil
		case err = <-done:
		}
		b.closeUnstarted()
		if !faults.Transient(err) {
			return nil, nil, fmt.Errorf("processor: command router: %w", err)
		}
		if !p.redisOutage.Wait(ctx, err) {
			return nil, nil, nil
		}
	}
}

// tendRedis keeps this instance's consumers alive in Redis (b.heartbeat,
// every ClaimTTL/3) while its database answers, and restores the command streams' consumer groups when
// Redis lost them (a restart without persistence). Commands sent before the
// loss are gone with it, so it also releases this instance's claims: the
// due loop sends their repetitions again at once (the ones already handled
// are no-ops) instead of waiting for the claims to run out. A failure counts
// toward the Redis outage; a success ends it.
func (p *Processor) tendRedis(ctx context.Context, b *bus, log *slog.Logger) {
	t := time.NewTicker(p.cfg.ClaimTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !p.databaseAnswers(ctx) {
			// Cut off from the database but not from Redis, its consumers
			// cannot run the commands they read: its alive key runs out,
			// and the other instances take those commands (shouldClaim)
			// instead of leaving them to it until the claim hold.
			continue
		}
		if !b.heartbeat(ctx) {
			continue
		}
		n, err := b.restoreGroups(ctx)
		if err != nil {
			if ctx.Err() == nil {
				p.redisOutage.Failed(err)
			}
			continue
		}
		p.redisOutage.Recovered()
		if n == 0 {
			continue
		}
		log.Warn("Redis lost the command streams' consumer groups (a restart without its data?): recreated them, sending what is due again", "groups", n)
		qctx, cancel := context.WithTimeout(ctx, p.cfg.QueryTimeout)
		if _, err := releaseClaims(qctx, p.cfg.DB, p.cfg.Owner); err != nil {
			log.Warn("claims not released; their repetitions go out again when they expire", "err", err)
		}
		cancel()
	}
}

// databaseAnswers reports whether the database answers a trivial query
// within ClaimTTL/2 (TestSeveralHosts in cmd/taskqueue cuts an instance off
// from the database and not from Redis).
func (p *Processor) databaseAnswers(ctx context.Context) bool {
	// Renewals then come at most ClaimTTL/3 + ClaimTTL/2 apart: within the key's TTL.
	qctx, cancel := context.WithTimeout(ctx, p.cfg.ClaimTTL/2)
	defer cancel()
	var one int
	return p.cfg.DB.QueryRow(qctx, `SELECT 1`).Scan(&one) == nil
}

// loop is the due loop: claim what is due, send it, sleep until the next
// due time (at most MaxSleep) or a change of the schedule. It stops only
// when ctx ends: a transient failure (the database or Redis away, a call
// that ran out of QueryTimeout) waits the outage's backoff and tries again;
// a permanent one is logged and tried again after ErrorBackoffMax.
func (p *Processor) loop(ctx context.Context, b *bus) {
	lastPrune, lastRenew := time.Time{}, time.Time{}
	// ahead are the batches being sent (oldest first, at most maxInFlight)
	// while the loop claims the next one: a burst of due repetitions is
	// claimed and sent without the claims' round trips between the
	// batches, a batch's commands start (their reads) while the previous
	// batch's appends are still being committed, and the rows the schedule
	// commits during a cold start's catch-up are claimed as they commit.
	var ahead []*sending
	defer func() {
		for _, s := range ahead {
			<-s.done
		}
	}()
	for ctx.Err() == nil {
		changed := p.runner.Committed()
		now := p.cfg.Clock.Now()
		if now.Sub(lastRenew) >= p.cfg.ClaimTTL/3 {
			if err := p.query(ctx, func(ctx context.Context) error {
				_, err := renewClaims(ctx, p.cfg.DB, p.cfg.Owner, now, p.cfg.ClaimTTL, claimHoldTTLs*p.cfg.ClaimTTL)
				return err
			}); err != nil {
				p.backOff(ctx, p.loopOutage, err)
				continue
			}
			lastRenew = now
		}
		if p.strays.any() {
			if err := p.query(ctx, func(ctx context.Context) error {
				return p.strays.release(ctx, p.cfg.DB, p.cfg.Owner, ahead)
			}); err != nil && faults.Transient(err) {
				p.backOff(ctx, p.loopOutage, err)
				continue
			} else if err != nil {
				// Not worth stopping the loop for: the strays' hold runs out.
				p.cfg.Logger.Error("due loop: stray claims not released; their repetitions go out when the claims' hold runs out",
					"owner", p.cfg.Owner, "err", err)
				p.strays = strayClaims{}
			}
		}
		var batch []due
		if err := p.query(ctx, func(ctx context.Context) (err error) {
			batch, err = claimDue(ctx, p.cfg.DB, p.cfg.Owner, now, p.cfg.ClaimTTL, p.cfg.BatchSize)
			return err
		}); err != nil {
			p.strays.lost(now)
			p.backOff(ctx, p.loopOutage, err)
			continue
		}
		p.loopOutage.Recovered()
		if len(batch) > 0 {
			// It goes out behind the batches in flight, waiting first for
			// the oldest when maxInFlight are out.
			if len(ahead) == maxInFlight {
				err := p.landed(ctx, ahead[0])
				ahead = ahead[1:]
				if err != nil {
					// The batch just claimed goes out with the next poll
					// too, and so does any batch in flight that fails.
					p.stalled(ctx, batch, &ahead, err)
					continue
				}
			}
			ahead = append(ahead, p.sendAhead(ctx, b, batch, now))
			if len(batch) == p.cfg.BatchSize {
				continue // more may be due: claim the next batch at once
			}
		}
		if len(ahead) > 0 {
			// Everything due and in the schedule is claimed: claim again
			// when the schedule commits (a cold start's catch-up commits
			// more due rows) or the oldest batch lands.
			select {
			case <-ctx.Done():
			case <-changed:
			case <-ahead[0].done:
				err := p.landed(ctx, ahead[0])
				ahead = ahead[1:]
				if err != nil {
					p.stalled(ctx, nil, &ahead, err)
				}
			}
			continue
		}
		if now.Sub(lastPrune) > 10*p.cfg.ClaimTTL {
			if err := p.query(ctx, func(ctx context.Context) error {
				return pruneClaims(ctx, p.cfg.DB, now.Add(-p.cfg.ClaimTTL))
			}); err != nil && faults.Transient(err) {
				p.backOff(ctx, p.loopOutage, err)
				continue
			} else if err != nil {
				p.cfg.Logger.Error("due loop: expired claims not pruned", "owner", p.cfg.Owner, "err", err)
			}
			lastPrune = now
		}
		wake := now.Add(p.cfg.MaxSleep)
		var next time.Time
		if err := p.query(ctx, func(ctx context.Context) (err error) {
			next, err = nextDue(ctx, p.cfg.DB, now)
			return err
		}); err != nil {
			p.backOff(ctx, p.loopOutage, err)
			continue
		}
		if !next.IsZero() && next.Before(wake) {
			wake = next
		}
		if !wake.After(now) {
			// Due by now but not claimed (another instance holds it, or
			// it fell due since): give the others a moment.
			wake = now.Add(10 * time.Millisecond)
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-p.cfg.Clock.At(wake):
		}
	}
}

// sending is a batch the due loop sends while it claims the next one.
type sending struct {
	batch []due
	done  chan struct{} // closed when sendBatch returned
	err   error         // sendBatch's error, once done is closed
	// ranHere is set when a command of the batch ran in this process
	// because Redis was away (sendOrRun): the batch's success then says
	// nothing of Redis.
	ranHere atomic.Bool
}

// sendAhead sends batch in the background (sendBatch).
func (p *Processor) sendAhead(ctx context.Context, b *bus, batch []due, now time.Time) *sending {
	s := &sending{batch: batch, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = p.sendBatch(ctx, b, batch, now, &s.ranHere)
	}()
	return s
}

// maxInFlight bounds the batches the due loop sends at once (on the
// embedded GoChannel each partition handles its commands one at a time, so
// the second batch's commands wait behind the first's on each partition).
const maxInFlight = 2

// stalled handles a batch in flight that failed (err): unless ctx ended,
// it releases the claims of batch (claimed, not sent; may be nil), waits
// for the other batches in flight (each that fails releases its claims),
// and backs off, so the next poll sends them all again.
func (p *Processor) stalled(ctx context.Context, batch []due, ahead *[]*sending, err error) {
	if ctx.Err() != nil {
		return
	}
	p.release(ctx, batch)
	for _, s := range *ahead {
		_ = p.landed(ctx, s) // a failure releases its claims
	}
	*ahead = nil
	p.backOff(ctx, p.sendOutage(), err)
}

// landed waits for a batch sent ahead; when it failed (and ctx has not
// ended) it releases the batch's claims, so the next poll sends it again.
func (p *Processor) landed(ctx context.Context, s *sending) error {
	<-s.done
	err := s.err
	if err == nil {
		if p.cfg.Redis != nil && !s.ranHere.Load() {
			p.redisOutage.Recovered()
		}
		return nil
	}
	if ctx.Err() == nil {
		p.release(ctx, s.batch)
	}
	return err
}

// release deletes this instance's claims on batch (a batch not sent, or
// not sent in full): the next poll sends it again (what did go out is then
// a no-op) instead of leaving it to claims this instance keeps renewing.
// When that fails the batch's claims are strays, released before the next
// claim.
func (p *Processor) release(ctx context.Context, batch []due) {
	if err := p.query(context.WithoutCancel(ctx), func(ctx context.Context) error {
		return releaseBatch(ctx, p.cfg.DB, p.cfg.Owner, batch)
	}); err != nil {
		p.loopOutage.Failed(err)
		p.strays.unreleased(batch)
	}
}

// query runs one database call of the due loop with its deadline
// (QueryTimeout).
func (p *Processor) query(ctx context.Context, call func(ctx context.Context) error) error {
	qctx, cancel := context.WithTimeout(ctx, p.cfg.QueryTimeout)
	defer cancel()
	return call(qctx)
}

// sendOutage is the outage a failed send belongs to: Redis's when commands
// travel on it, else the due loop's (an in-process bus fails only when it
// closes).
func (p *Processor) sendOutage() *faults.Outage {
	if p.cfg.Redis != nil {
		return p.redisOutage
	}
	return p.loopOutage
}

// backOff waits after a failed step of the due loop, unless ctx ended: a
// transient failure counts toward outage (one log line when it starts, one
// when it ends, metrics) and waits its backoff; a permanent one (a bug, a
// missing table) is logged every time and waits ErrorBackoffMax.
func (p *Processor) backOff(ctx context.Context, outage *faults.Outage, err error) {
	if ctx.Err() != nil {
		return
	}
	if faults.Transient(err) {
		outage.Wait(ctx, err)
		return
	}
	p.cfg.Logger.Error("due loop: failed; trying again", "owner", p.cfg.Owner, "err", err, "wait", p.cfg.ErrorBackoffMax)
	t := time.NewTimer(p.cfg.ErrorBackoffMax)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// sendBatch sends the commands of a batch, one message per partition: the
// partition's completions as one CompleteRepetitions (its queues loaded in
// one read, its events appended in one transaction, see handleBatch), then
// its offline stops one by one. The partitions go concurrently. On the
// embedded GoChannel a send returns when the command was handled, so the
// due loop holds at most maxInFlight batches being sent and the one it
// claimed meanwhile (see loop): no claim expires while its command waits
// in a queue.
func (p *Processor) sendBatch(ctx context.Context, b *bus, batch []due, now time.Time, ranHere *atomic.Bool) error {
	groups := map[int][]due{}
	for _, d := range batch {
		k := partitionOf(d.player, p.cfg.Partitions)
		groups[k] = append(groups[k], d)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(groups))
	for _, g := range groups {
		wg.Go(func() {
			if err := p.sendPartition(ctx, b, g, now, ranHere); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// sendPartition sends the commands of one partition's share of a batch.
func (p *Processor) sendPartition(ctx context.Context, b *bus, g []due, now time.Time, ranHere *atomic.Bool) error {
	var completions []command.CompleteRepetition
	var stops []due
	for _, d := range g {
		if now.Sub(d.dueAt) > p.cfg.OfflineCap {
			stops = append(stops, d)
			continue
		}
		completions = append(completions, completionOf(d))
	}
	for start := 0; start < len(completions); start += eventstore.MaxStreamsPerAppendMany {
		part := completions[start:min(len(completions), start+eventstore.MaxStreamsPerAppendMany)]
		p.sent.Add(int64(len(part)))
		cmd := &command.CompleteRepetitions{Completions: part}
		if err := p.sendOrRun(ctx, b, cmd, ranHere, func() error { return p.handleBatch(ctx, cmd) }); err != nil {
			p.sent.Add(-int64(len(part)))
			return fmt.Errorf("send %d completions: %w", len(part), err)
		}
	}
	for _, d := range stops {
		if err := p.sendStop(ctx, b, d, ranHere); err != nil {
			return err
		}
	}
	return nil
}

// sendOrRun sends cmd on the bus; when the bus is Redis and Redis is away,
// it runs cmd in this process instead (run), so that queues keep advancing
// through a Redis outage: the due repetitions are this instance's claims,
// and a command that also reached Redis after all is recognized by its
// idempotency key when a consumer runs it again. Running it here sets
// ranHere.
func (p *Processor) sendOrRun(ctx context.Context, b *bus, cmd any, ranHere *atomic.Bool, run func() error) error {
	err := b.commands.Send(ctx, cmd)
	if err == nil || p.cfg.Redis == nil || !faults.Transient(err) || ctx.Err() != nil {
		return err
	}
	// The outage itself is the command streams' subscribers' to record
	// (one log line each way): they read Redis all the time.
	p.cfg.Logger.Debug("redis is away: running a command in this process", "owner", p.cfg.Owner, "err", err)
	ranHere.Store(true)
	if runErr := run(); runErr != nil {
		return errors.Join(err, runErr)
	}
	return nil
}

// completionOf is the completion of a claimed repetition.
func completionOf(d due) command.CompleteRepetition {
	key := command.CompletionKey(d.taskID, d.number)
	return command.CompleteRepetition{
		Request: command.Request{PlayerID: d.player, IdempotencyKey: key, CorrelationID: key, Actor: command.ActorSystem},
		TaskID:  d.taskID, Number: d.number,
	}
}

// sendStop sends StopOfflineQueue for a repetition that has been due for
// longer than the offline cap.
func (p *Processor) sendStop(ctx context.Context, b *bus, d due, ranHere *atomic.Bool) error {
	key := command.CompletionKey(d.taskID, d.number)
	until := d.dueAt.Add(p.cfg.OfflineCap)
	cmd := &StopOfflineQueue{
		PlayerID: d.player, TaskID: d.taskID, Number: d.number, Until: until, CorrelationID: key,
		Reason: fmt.Sprintf("offline progress is capped at %s: the queue stopped at %s; start it to continue",
			p.cfg.OfflineCap, until.UTC().Format(time.RFC3339)),
	}
	p.sent.Add(1)
	if err := p.sendOrRun(ctx, b, cmd, ranHere, func() error { return p.handleStop(ctx, cmd) }); err != nil {
		p.sent.Add(-1)
		return fmt.Errorf("send the offline stop of repetition %d of %s for %s: %w", d.number, d.taskID, d.player, err)
	}
	return nil
}

// handleBatch runs CompleteRepetitions (the bus's handler). A failure of
// the batch as a whole (the database away) fails the message, which is
// retried like any command (a transient failure until the database is
// back; the completions that did go through are then recognized by their
// keys). A completion that failed on its own is sent on alone as
// CompleteRepetition, so that it meets the retries and, should it fail
// for good, the dead letter queue of a single command, without holding
// back the rest of its batch.
func (p *Processor) handleBatch(ctx context.Context, cmd *command.CompleteRepetitions) error {
	var results []command.CompletionResult
	err := p.attempt(ctx, func(ctx context.Context) (err error) {
		results, err = p.handlers.CompleteRepetitions.Handle(ctx, *cmd)
		return err
	})
	if err != nil {
		return err
	}
	for i, r := range results {
		if r.Err == nil {
			if len(r.Events) > 0 {
				p.completed.Add(1)
			}
			continue
		}
		c := cmd.Completions[i]
		p.cfg.Logger.Debug("a completion of a batch failed; sending it alone", "owner", p.cfg.Owner,
			"player", c.PlayerID, "task", c.TaskID, "number", c.Number, "err", r.Err)
		if err := p.resend(ctx, &c); err != nil {
			return err
		}
	}
	return nil
}

// errStopping is resend's error while the processor stops (or has not
// started its bus yet): transient, so the batch is not dead-lettered but
// left to its retry (or, stopping, to the next instance).
var errStopping = fmt.Errorf("%w: the command bus is not running", faults.ErrUnavailable)

// resend sends one completion as a command of its own.
func (p *Processor) resend(ctx context.Context, c *command.CompleteRepetition) error {
	p.pubMu.Lock()
	b := p.bus
	p.pubMu.Unlock()
	if b == nil {
		return fmt.Errorf("send the completion of repetition %d of %s for %s alone: %w", c.Number, c.TaskID, c.PlayerID, errStopping)
	}
	if err := b.commands.Send(ctx, c); err != nil {
		return fmt.Errorf("send the completion of repetition %d of %s for %s alone: %w", c.Number, c.TaskID, c.PlayerID, err)
	}
	return nil
}

// handleComplete runs CompleteRepetition (the bus's handler).
func (p *Processor) handleComplete(ctx context.Context, cmd *command.CompleteRepetition) error {
	var res command.Result
	err := p.attempt(ctx, func(ctx context.Context) (err error) {
		res, err = p.handlers.CompleteRepetition.Handle(ctx, *cmd)
		return err
	})
	if err != nil {
		return err
	}
	if len(res.Events) > 0 {
		p.completed.Add(1)
	}
	return nil
}

// attempt runs one step of a command with its deadline (CommandTimeout).
func (p *Processor) attempt(ctx context.Context, step func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CommandTimeout)
	defer cancel()
	return step(ctx)
}

// maxCappedSteps bounds the completions of one StopOfflineQueue (a queue
// holds at most MaxQueueLimit tasks of MaxCount repetitions, and each
// completion decision covers up to MaxCatchUp of them).
const maxCappedSteps = domain.MaxQueueLimit * domain.MaxCount / domain.MaxCatchUp

// handleStop runs StopOfflineQueue: with the command clock pinned at
// cmd.Until, it completes every repetition due by then (each at its due
// time) and stops the queue there, unless that drained it.
func (p *Processor) handleStop(ctx context.Context, cmd *StopOfflineQueue) error {
	p.capMu.Lock()
	defer p.capMu.Unlock()
	p.pinned.set(cmd.Until)
	for range maxCappedSteps {
		var snap command.QueueSnapshot
		err := p.attempt(ctx, func(ctx context.Context) (err error) {
			snap, err = p.capped.GetQueue.Handle(ctx, command.GetQueue{PlayerID: cmd.PlayerID})
			return err
		})
		if err != nil {
			return fmt.Errorf("offline cap of %s: %w", cmd.PlayerID, err)
		}
		rep := snap.View.Repetition
		if !snap.View.Running {
			return nil // stopped already (by us before, or by the player)
		}
		if rep == nil {
			// Drained before the cap: nothing is left to hold back, and a
			// stopped empty queue would not run the next task the player adds.
			return nil
		}
		if rep.DueAt.After(cmd.Until) {
			break
		}
		key := command.CompletionKey(string(rep.TaskID), rep.Number)
		err = p.attempt(ctx, func(ctx context.Context) error {
			_, err := p.capped.CompleteRepetition.Handle(ctx, command.CompleteRepetition{
				Request: command.Request{PlayerID: cmd.PlayerID, IdempotencyKey: key, CorrelationID: cmd.CorrelationID, Actor: command.ActorSystem},
				TaskID:  string(rep.TaskID), Number: rep.Number,
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("offline cap of %s: %w", cmd.PlayerID, err)
		}
	}
	err := p.attempt(ctx, func(ctx context.Context) error {
		_, err := p.capped.StopQueue.Handle(ctx, command.StopQueue{
			Request: command.Request{
				PlayerID: cmd.PlayerID, IdempotencyKey: fmt.Sprintf("offline-cap-%s-%d", cmd.TaskID, cmd.Number),
				CorrelationID: cmd.CorrelationID, Actor: command.ActorSystem,
			},
			Reason: cmd.Reason,
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("offline cap of %s: %w", cmd.PlayerID, err)
	}
	p.stopped.Add(1)
	return nil
}

package processor

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
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

	sent, completed, stopped atomic.Int64
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
	cc := cfg.Commands
	cc.Clock = cfg.Clock.Now
	cc.Optimistic = true // the processor makes most of its streams' writes
	h, err := command.NewHandlers(cfg.Store, cc)
	if err != nil {
		return nil, fmt.Errorf("processor: %w", err)
	}
	p.handlers = h
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
		Logger:      cfg.Logger,
		Now:         cfg.Clock.Now,
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
// returns an error only when it cannot start.
func (p *Processor) Run(ctx context.Context) error {
	b, err := newBus(&p.cfg, p.dead, p.handleComplete, p.handleStop)
	if err != nil {
		return fmt.Errorf("processor: %w", err)
	}
	log := p.cfg.Logger.With("component", "processor", "owner", p.cfg.Owner)

	runCtx, stopRunner := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = p.runner.Run(runCtx) }()
	routerErr := make(chan error, 1)
	go func() { defer wg.Done(); routerErr <- b.router.Run(runCtx) }()
	select {
	case <-b.router.Running():
	case err := <-routerErr:
		stopRunner()
		wg.Wait()
		return fmt.Errorf("processor: command router: %w", err)
	case <-ctx.Done():
	}
	p.pubMu.Lock()
	p.pub, p.bus = b.pub, b
	p.pubMu.Unlock()
	log.Info("processor started", "partitions", p.cfg.Partitions, "redis", p.cfg.Redis != nil)
	if p.cfg.Redis != nil {
		wg.Add(1)
		go func() { defer wg.Done(); p.keepGroups(runCtx, b, log) }()
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
	n, err := releaseClaims(rctx, p.cfg.DB, p.cfg.Owner)
	cancel()
	if err != nil {
		log.Warn("claims not released; they expire by themselves", "err", err)
	}
	stopRunner()
	wg.Wait()
	log.Info("processor stopped", "claimsReleased", n)
	return nil
}

// groupCheckInterval is how often keepGroups looks for lost consumer groups.
const groupCheckInterval = 2 * time.Second

// keepGroups restores the command streams' consumer groups when Redis lost
// them (a restart without persistence). Commands sent before the loss are
// gone with it, so it also releases this instance's claims: the due loop
// sends their repetitions again at once (the ones already handled are
// no-ops) instead of waiting for the claims to run out.
func (p *Processor) keepGroups(ctx context.Context, b *bus, log *slog.Logger) {
	t := time.NewTicker(groupCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := b.restoreGroups(ctx)
		if err != nil || n == 0 {
			continue // Redis away: the due loop and the subscribers report it
		}
		log.Warn("Redis lost the command streams' consumer groups (a restart without its data?): recreated them, sending what is due again", "groups", n)
		if _, err := releaseClaims(ctx, p.cfg.DB, p.cfg.Owner); err != nil {
			log.Warn("claims not released; their repetitions go out again when they expire", "err", err)
		}
	}
}

// loop is the due loop: claim what is due, send it, sleep until the next
// due time (at most MaxSleep) or a change of the schedule.
func (p *Processor) loop(ctx context.Context, b *bus) {
	log := p.cfg.Logger.With("component", "processor", "owner", p.cfg.Owner)
	backoff := time.Duration(0)
	lastPrune, lastRenew := time.Time{}, time.Time{}
	for ctx.Err() == nil {
		changed := p.runner.Committed()
		now := p.cfg.Clock.Now()
		var err error
		if now.Sub(lastRenew) >= p.cfg.ClaimTTL/3 {
			if _, err = renewClaims(ctx, p.cfg.DB, p.cfg.Owner, now, p.cfg.ClaimTTL, claimHoldTTLs*p.cfg.ClaimTTL); err == nil {
				lastRenew = now
			}
		}
		var batch []due
		if err == nil {
			batch, err = claimDue(ctx, p.cfg.DB, p.cfg.Owner, now, p.cfg.ClaimTTL, p.cfg.BatchSize)
		}
		if err == nil {
			if err = p.sendBatch(ctx, b, batch, now); err != nil && ctx.Err() == nil {
				if rerr := releaseBatch(context.WithoutCancel(ctx), p.cfg.DB, p.cfg.Owner, batch); rerr != nil {
					log.Warn("due loop: claims of the batch not sent stay until they expire", "err", rerr)
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, 100*time.Millisecond), p.cfg.ErrorBackoffMax)
			log.Warn("due loop: backing off", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		if len(batch) == p.cfg.BatchSize {
			continue // more may be due
		}
		if now.Sub(lastPrune) > 10*p.cfg.ClaimTTL {
			if err := pruneClaims(ctx, p.cfg.DB, now.Add(-p.cfg.ClaimTTL)); err != nil {
				log.Warn("due loop", "err", err)
			}
			lastPrune = now
		}
		wake := now.Add(p.cfg.MaxSleep)
		if next, err := nextDue(ctx, p.cfg.DB, now); err == nil && !next.IsZero() && next.Before(wake) {
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

// sendBatch sends the commands of a batch, the partitions concurrently and
// each partition's in order. On the embedded GoChannel a send returns when
// the command was handled, so the next poll claims only when the batch is
// done: no claim expires while its command waits in a queue.
func (p *Processor) sendBatch(ctx context.Context, b *bus, batch []due, now time.Time) error {
	groups := map[int][]due{}
	for _, d := range batch {
		k := partitionOf(d.player, p.cfg.Partitions)
		groups[k] = append(groups[k], d)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(groups))
	for _, g := range groups {
		wg.Go(func() {
			for _, d := range g {
				if err := p.send(ctx, b, d, now); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// send sends the command for one claimed repetition: its completion, or,
// when it has been due for longer than the offline cap, StopOfflineQueue.
func (p *Processor) send(ctx context.Context, b *bus, d due, now time.Time) error {
	key := command.CompletionKey(d.taskID, d.number)
	var cmd any = &command.CompleteRepetition{
		Request: command.Request{PlayerID: d.player, IdempotencyKey: key, CorrelationID: key, Actor: "system"},
		TaskID:  d.taskID, Number: d.number,
	}
	if now.Sub(d.dueAt) > p.cfg.OfflineCap {
		until := d.dueAt.Add(p.cfg.OfflineCap)
		cmd = &StopOfflineQueue{
			PlayerID: d.player, TaskID: d.taskID, Number: d.number, Until: until, CorrelationID: key,
			Reason: fmt.Sprintf("offline progress is capped at %s: the queue stopped at %s; start it to continue",
				p.cfg.OfflineCap, until.UTC().Format(time.RFC3339)),
		}
	}
	p.sent.Add(1)
	if err := b.commands.Send(ctx, cmd); err != nil {
		p.sent.Add(-1)
		return fmt.Errorf("send the completion of repetition %d of %s for %s: %w", d.number, d.taskID, d.player, err)
	}
	return nil
}

// handleComplete runs CompleteRepetition (the bus's handler).
func (p *Processor) handleComplete(ctx context.Context, cmd *command.CompleteRepetition) error {
	res, err := p.handlers.CompleteRepetition.Handle(ctx, *cmd)
	if err != nil {
		return err
	}
	if len(res.Events) > 0 {
		p.completed.Add(1)
	}
	return nil
}

// maxCappedSteps bounds the completions of one StopOfflineQueue (a queue
// holds at most MaxQueueLimit tasks of MaxCount repetitions, and each
// completion decision covers up to MaxCatchUp of them).
const maxCappedSteps = domain.MaxQueueLimit * domain.MaxCount / domain.MaxCatchUp

// handleStop runs StopOfflineQueue: with the command clock pinned at
// cmd.Until, it completes every repetition due by then (each at its due
// time) and stops the queue there.
func (p *Processor) handleStop(ctx context.Context, cmd *StopOfflineQueue) error {
	p.capMu.Lock()
	defer p.capMu.Unlock()
	p.pinned.set(cmd.Until)
	for range maxCappedSteps {
		snap, err := p.capped.GetQueue.Handle(ctx, command.GetQueue{PlayerID: cmd.PlayerID})
		if err != nil {
			return fmt.Errorf("offline cap of %s: %w", cmd.PlayerID, err)
		}
		rep := snap.View.Repetition
		if !snap.View.Running {
			return nil // stopped already (by us before, or by the player)
		}
		if rep == nil || rep.DueAt.After(cmd.Until) {
			break
		}
		key := command.CompletionKey(string(rep.TaskID), rep.Number)
		_, err = p.capped.CompleteRepetition.Handle(ctx, command.CompleteRepetition{
			Request: command.Request{PlayerID: cmd.PlayerID, IdempotencyKey: key, CorrelationID: cmd.CorrelationID, Actor: "system"},
			TaskID:  string(rep.TaskID), Number: rep.Number,
		})
		if err != nil {
			return fmt.Errorf("offline cap of %s: %w", cmd.PlayerID, err)
		}
	}
	_, err := p.capped.StopQueue.Handle(ctx, command.StopQueue{
		Request: command.Request{
			PlayerID: cmd.PlayerID, IdempotencyKey: fmt.Sprintf("offline-cap-%s-%d", cmd.TaskID, cmd.Number),
			CorrelationID: cmd.CorrelationID, Actor: "system",
		},
		Reason: cmd.Reason,
	})
	if err != nil {
		return fmt.Errorf("offline cap of %s: %w", cmd.PlayerID, err)
	}
	p.stopped.Add(1)
	return nil
}

package processor

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/internal/faults"
)

// StopOfflineQueue is the processor's command for a queue whose running
// repetition has been due for longer than the offline cap: complete every
// repetition due at or before Until (with the clock at Until, so each
// completes at its due time), then stop the queue at Until with Reason.
type StopOfflineQueue struct {
	PlayerID      string
	TaskID        string
	Number        int
	Until         time.Time
	Reason        string
	CorrelationID string
}

// Names of the commands on the bus (cqrs.StructName of their types);
// renaming a type strands the messages of the old name in their topics.
const (
	completeCommandName = "CompleteRepetition"
	batchCommandName    = "CompleteRepetitions"
	stopCommandName     = "StopOfflineQueue"
)

// bus is the watermill side: the CommandBus the due loop sends through,
// the CommandProcessor's router that handles the commands (middleware:
// CorrelationID and Recoverer on the router, PoisonQueue and Retry on each
// command handler), and the dead-letter handler that stores what the
// PoisonQueue published.
type bus struct {
	cfg        *Config
	pub        message.Publisher
	gochan     *gochannel.GoChannel // nil with Redis
	router     *message.Router
	commands   *cqrs.CommandBus
	poison     string
	marshaler  cqrs.CommandEventMarshaler
	wmLogger   watermill.LoggerAdapter
	subLogger  watermill.LoggerAdapter // the Redis subscribers': transient errors feed redisOutage
	subs       []message.Subscriber
	deadLetter *DeadLetters

	cmdOutage   *faults.Outage // the commands' transient failures
	redisOutage *faults.Outage // Redis away (heartbeat, sends, subscribers)

	stopOnce sync.Once
	stopping chan struct{} // closed when the processor stops

	aliveMu   sync.Mutex
	aliveSeen map[string]aliveAt // consumer -> what its key said, and when
}

// aliveAt is a consumer's liveness as last read.
type aliveAt struct {
	alive bool
	at    time.Time
}

func (c *Config) commandTopic(name string, partition int) string {
	return fmt.Sprintf("%s.commands.%s.p%d", c.TopicPrefix, name, partition)
}

// partitionOf maps a player to a command partition: one player's commands
// always go through one topic, in order.
func partitionOf(player string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(player))
	return int(h.Sum32() % uint32(n))
}

// commandHandlers are the handlers of the commands on the bus.
type commandHandlers struct {
	complete func(context.Context, *command.CompleteRepetition) error
	batch    func(context.Context, *command.CompleteRepetitions) error
	stop     func(context.Context, *StopOfflineQueue) error
}

func newBus(cfg *Config, dl *DeadLetters, handlers commandHandlers, cmdOutage, redisOutage *faults.Outage) (*bus, error) {
	b := &bus{
		cfg:         cfg,
		poison:      cfg.TopicPrefix + ".commands.deadletters",
		marshaler:   cqrs.JSONMarshaler{GenerateName: cqrs.StructName},
		wmLogger:    watermill.NewSlogLogger(cfg.Logger.With("component", "processor-bus")),
		deadLetter:  dl,
		cmdOutage:   cmdOutage,
		redisOutage: redisOutage,
		stopping:    make(chan struct{}),
		aliveSeen:   map[string]aliveAt{},
	}
	b.subLogger = outageLogger{LoggerAdapter: b.wmLogger, outage: redisOutage, observer: cfg.Observer}
	if cfg.Redis != nil {
		p, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: keepOpen{cfg.Redis}, DefaultMaxlen: commandStreamMaxlen}, b.wmLogger)
		if err != nil {
			return nil, fmt.Errorf("redis stream publisher: %w", err)
		}
		b.pub = p
	} else {
		// Publish returns when the command was handled (acked): the due
		// loop's back-pressure, and no command is left queued at shutdown.
		b.gochan = gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, b.wmLogger)
		b.pub = b.gochan
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, b.wmLogger)
	if err != nil {
		return nil, fmt.Errorf("watermill router: %w", err)
	}
	router.AddMiddleware(middleware.CorrelationID, middleware.Recoverer)
	b.router = router

	b.commands, err = cqrs.NewCommandBusWithConfig(b.pub, cqrs.CommandBusConfig{
		GeneratePublishTopic: func(p cqrs.CommandBusGeneratePublishTopicParams) (string, error) {
			var player string
			switch c := p.Command.(type) {
			case *command.CompleteRepetition:
				player = c.PlayerID
			case *command.CompleteRepetitions:
				// A batch holds the players of one partition (sendBatch).
				if len(c.Completions) == 0 {
					return "", errors.New("an empty batch of completions")
				}
				player = c.Completions[0].PlayerID
			case *StopOfflineQueue:
				player = c.PlayerID
			default:
				return "", fmt.Errorf("no topic for command %s", p.CommandName)
			}
			return cfg.commandTopic(p.CommandName, partitionOf(player, cfg.Partitions)), nil
		},
		OnSend: func(p cqrs.CommandBusOnSendParams) error {
			switch c := p.Command.(type) {
			case *command.CompleteRepetition:
				middleware.SetCorrelationID(c.CorrelationID, p.Message)
			case *command.CompleteRepetitions:
				middleware.SetCorrelationID(c.Completions[0].CorrelationID, p.Message)
			case *StopOfflineQueue:
				middleware.SetCorrelationID(c.CorrelationID, p.Message)
			}
			return nil
		},
		Marshaler: b.marshaler,
		Logger:    b.wmLogger,
	})
	if err != nil {
		return nil, fmt.Errorf("command bus: %w", err)
	}

	cp, err := cqrs.NewCommandProcessorWithConfig(router, cqrs.CommandProcessorConfig{
		GenerateSubscribeTopic: func(p cqrs.CommandProcessorGenerateSubscribeTopicParams) (string, error) {
			h, ok := p.CommandHandler.(partitionHandler)
			if !ok {
				return "", fmt.Errorf("handler %s has no partition", p.CommandHandler.HandlerName())
			}
			return cfg.commandTopic(p.CommandName, h.partition), nil
		},
		SubscriberConstructor: func(p cqrs.CommandProcessorSubscriberConstructorParams) (message.Subscriber, error) {
			return b.subscriber(p.HandlerName)
		},
		Marshaler: b.marshaler,
		Logger:    b.wmLogger,
	})
	if err != nil {
		return nil, fmt.Errorf("command processor: %w", err)
	}
	// A transient failure is never the command's: it never reaches the
	// poison queue (transientRetry retries it until the dependency is
	// back, or gives it up unacknowledged when the processor stops).
	poison, err := middleware.PoisonQueueWithFilter(b.pub, b.poison, func(err error) bool { return !faults.Transient(err) })
	if err != nil {
		return nil, err
	}
	retry := middleware.Retry{
		MaxRetries:      cfg.MaxRetries,
		InitialInterval: cfg.RetryInitial,
		MaxInterval:     cfg.RetryMax,
		Multiplier:      2,
		ShouldRetry:     func(p middleware.RetryParams) bool { return retryable(p.Err) && !faults.Transient(p.Err) },
		// Each attempt gets the message's own context back.
		ResetContextOnRetry: true,
		Logger:              b.wmLogger,
	}
	for part := 0; part < cfg.Partitions; part++ {
		hs := []partitionHandler{
			{CommandHandler: cqrs.NewCommandHandler(fmt.Sprintf("%s.p%d", completeCommandName, part), handlers.complete), partition: part},
			{CommandHandler: cqrs.NewCommandHandler(fmt.Sprintf("%s.p%d", batchCommandName, part), handlers.batch), partition: part},
			{CommandHandler: cqrs.NewCommandHandler(fmt.Sprintf("%s.p%d", stopCommandName, part), handlers.stop), partition: part},
		}
		for _, h := range hs {
			rh, err := cp.AddHandler(h)
			if err != nil {
				return nil, fmt.Errorf("add command handler %s: %w", h.HandlerName(), err)
			}
			// Outermost first: a command that still fails for a
			// permanent reason after the retries goes to the poison
			// queue (and is acked); transient failures are retried
			// innermost, without limit.
			rh.AddMiddleware(poison, retry.Middleware, b.transientRetry)
		}
	}

	dlSub, err := b.subscriber("deadletters")
	if err != nil {
		return nil, err
	}
	dlRetry := middleware.Retry{MaxRetries: 20, InitialInterval: 100 * time.Millisecond, MaxInterval: 5 * time.Second, Multiplier: 2, Logger: b.wmLogger}
	h := router.AddConsumerHandler("deadletters", b.poison, dlSub, func(msg *message.Message) error {
		ctx, cancel := context.WithTimeout(msg.Context(), cfg.CommandTimeout)
		defer cancel()
		return dl.store(ctx, msg, b.marshaler.NameFromMessage(msg))
	})
	h.AddMiddleware(dlRetry.Middleware, b.transientRetry)
	return b, nil
}

// transientRetry retries a command (or a dead letter's store) that failed
// for a transient reason (faults.Transient: the database away, a call that
// ran out of CommandTimeout) until it succeeds or fails for a permanent
// reason, pacing the attempts by the commands' outage (one log line when it
// starts, one when it ends). Such a failure is never recorded against the
// command. It gives up only when the processor stops: on Redis it then
// waits for its subscriber to close and leaves the message unacknowledged
// (pending, taken over by a live instance); on the in-process GoChannel,
// whose sender (this instance's due loop) waits for it, it acknowledges it
// — the claim on its repetition is released or expires, and the schedule
// sends it again.
func (b *bus) transientRetry(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		for {
			out, err := h(msg)
			if err == nil {
				b.cmdOutage.Recovered()
				return out, nil
			}
			if !faults.Transient(err) {
				return out, err
			}
			ctx := msg.Context()
			if ctx.Err() != nil {
				return nil, err
			}
			stopping := b.stopping
			select {
			case <-stopping:
				if b.gochan != nil {
					return nil, nil
				}
				<-ctx.Done() // the subscriber closes after the due loop stopped
				return nil, err
			default:
			}
			wait := time.NewTimer(b.cmdOutage.Failed(err))
			select {
			case <-wait.C:
			case <-ctx.Done():
			case <-stopping:
			}
			wait.Stop()
		}
	}
}

// stop tells the handlers that the processor stops (see transientRetry).
func (b *bus) stop() { b.stopOnce.Do(func() { close(b.stopping) }) }

// outageLogger is the Redis subscribers' watermill logger: they log every
// failed read and claim round (several a second each while Redis is away).
// A transient error (or NOGROUP, a group lost with Redis's data, which
// tendRedis restores) is not logged but counted toward the Redis outage
// while one is under way (its start and end are logged once, by whoever
// noticed: the heartbeat, the due loop's sends), and else only counted in
// the metrics; anything else is logged as it is.
type outageLogger struct {
	watermill.LoggerAdapter
	outage   *faults.Outage
	observer faults.Observer
}

func (l outageLogger) Error(msg string, err error, fields watermill.LogFields) {
	if isNoGroup(err) {
		err = fmt.Errorf("%w: %w", faults.ErrUnavailable, err)
	}
	if !faults.Transient(err) {
		l.LoggerAdapter.Error(msg, err, fields)
		return
	}
	if _, _, down := l.outage.Down(); down {
		l.outage.Failed(err)
	} else if l.observer != nil {
		l.observer.TransientError(redisComponent, faults.Classify(err))
	}
}

func (l outageLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return outageLogger{LoggerAdapter: l.LoggerAdapter.With(fields), outage: l.outage, observer: l.observer}
}

// redisComponent names the Redis outage in the log and the metrics.
const redisComponent = "processor redis"

func isNoGroup(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOGROUP") }

// takeOverMargin is the most that a take-over of a killed instance's work
// takes beyond ClaimTTL (with the default MaxSleep): one poll of the due
// loop (MaxSleep) for the repetitions it had claimed, one claim round of
// the Redis consumers (redisClaimInterval) for the commands its consumers
// had read. docs/EVENTS.md states the bound.
const takeOverMargin = time.Second

// redisClaimInterval is how often each Redis consumer looks for pending
// messages idle for as long (watermill-redisstream's ClaimInterval and
// MaxIdleTime); it takes those of dead consumers (shouldClaim).
const redisClaimInterval = takeOverMargin

// aliveKey is the Redis key that says the consumers of instance owner are
// alive: set with a TTL of ClaimTTL, renewed every ClaimTTL/3 (heartbeat),
// deleted at a graceful stop (dead).
func (c *Config) aliveKey(owner string) string { return c.TopicPrefix + ".alive." + owner }

// heartbeat renews this instance's alive key; it reports whether Redis
// answered (a failure counts toward the Redis outage).
func (b *bus) heartbeat(ctx context.Context) bool {
	hctx, cancel := context.WithTimeout(ctx, b.cfg.ClaimTTL/3)
	defer cancel()
	if err := b.cfg.Redis.Set(hctx, b.cfg.aliveKey(b.cfg.Owner), b.cfg.Owner, b.cfg.ClaimTTL).Err(); err != nil {
		if ctx.Err() == nil {
			b.redisOutage.Failed(err)
		}
		return false
	}
	return true
}

// dead deletes this instance's alive key (graceful stop), so that the
// messages its consumers read and did not finish are taken at once.
func (b *bus) dead(ctx context.Context) {
	_ = b.cfg.Redis.Del(ctx, b.cfg.aliveKey(b.cfg.Owner)).Err()
}

// shouldClaim decides whether this instance's consumer takes a message
// pending (read, not acknowledged) for another consumer for at least
// redisClaimInterval: yes when that consumer's instance is dead (its alive
// key expired: killed, or stopped), so a killed instance's commands go on
// within ClaimTTL + redisClaimInterval — the survivor's own claims on them
// are renewed meanwhile, so the due loop would not send them again; for a
// live consumer only after the claim hold (12×ClaimTTL, when the due loop
// sends it again anyway), since it is still handling the message (a
// command retried through an outage stays pending) and a second handler
// would only repeat its work.
func (b *bus) shouldClaim(xp redis.XPendingExt) bool {
	return xp.Idle >= claimHoldTTLs*b.cfg.ClaimTTL || !b.alive(xp.Consumer)
}

// alive reports whether consumer's instance is alive, from its alive key,
// read at most once per half claim interval. When Redis cannot say, it is
// presumed alive.
func (b *bus) alive(consumer string) bool {
	if consumer == b.cfg.Owner {
		return true
	}
	b.aliveMu.Lock()
	seen, ok := b.aliveSeen[consumer]
	b.aliveMu.Unlock()
	if ok && time.Since(seen.at) < redisClaimInterval/2 {
		return seen.alive
	}
	ctx, cancel := context.WithTimeout(context.Background(), redisClaimInterval)
	n, err := b.cfg.Redis.Exists(ctx, b.cfg.aliveKey(consumer)).Result()
	cancel()
	alive := err != nil || n > 0
	b.aliveMu.Lock()
	if len(b.aliveSeen) > 1000 {
		clear(b.aliveSeen)
	}
	b.aliveSeen[consumer] = aliveAt{alive: alive, at: time.Now()}
	b.aliveMu.Unlock()
	return alive
}

// keepOpen is the caller's Redis client as watermill-redisstream gets it:
// its publishers and subscribers close their client when they close, and
// this one belongs to the caller (Config.Redis), so closing is a no-op.
type keepOpen struct{ redis.UniversalClient }

func (keepOpen) Close() error { return nil }

// commandStreamMaxlen caps each command stream (XADD MAXLEN ~): commands
// are handled within seconds, so only a long backlog is trimmed, and a
// trimmed command is sent again by the due loop once its claim expires
// (the schedule, not the stream, is the source of truth).
const commandStreamMaxlen = 100_000

// partitionHandler is a command handler bound to one partition's topic.
type partitionHandler struct {
	cqrs.CommandHandler
	partition int
}

// subscriber returns the subscriber of one handler: the shared GoChannel,
// or a Redis stream consumer in the handler's consumer group (the group is
// named after the handler, so each command is handled by one instance).
func (b *bus) subscriber(handler string) (message.Subscriber, error) {
	if b.gochan != nil {
		return b.gochan, nil
	}
	s, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client:        keepOpen{b.cfg.Redis},
		Consumer:      b.cfg.Owner,
		ConsumerGroup: b.cfg.TopicPrefix + "." + handler,
		// A message a killed instance read but never acked is claimed by
		// another within a claim round of its alive key's expiry
		// (shouldClaim), not after a fixed idle time that would have to
		// exceed the longest handling of a live one.
		MaxIdleTime:               redisClaimInterval,
		ClaimInterval:             redisClaimInterval,
		ShouldClaimPendingMessage: b.shouldClaim,
		BlockTime:                 100 * time.Millisecond,
		OldestId:                  "0",
		// A nacked message (a handler that gave up as the processor
		// stops) is not resent in a tight loop before the subscriber
		// closes.
		NackResendSleep: 100 * time.Millisecond,
		// Never block forever on the first read, so Close returns.
		DisableIndefiniteInitialBlock: true,
	}, b.subLogger)
	if err != nil {
		return nil, fmt.Errorf("redis stream subscriber for %s: %w", handler, err)
	}
	b.subs = append(b.subs, s)
	return s, nil
}

// retryable tells the Retry middleware which errors are worth another try:
// not bad input, which fails the same way every time.
func retryable(err error) bool {
	var ve *domain.ValidationError
	switch {
	case errors.As(err, &ve), errors.Is(err, domain.ErrInvalid), errors.Is(err, command.ErrIdempotencyKeyReused):
		return false
	}
	return true
}

// groups lists the Redis streams the bus consumes and their consumer
// groups (nil on the GoChannel).
func (b *bus) groups() map[string]string {
	if b.gochan != nil {
		return nil
	}
	out := map[string]string{b.poison: b.cfg.TopicPrefix + ".deadletters"}
	for part := 0; part < b.cfg.Partitions; part++ {
		for _, name := range []string{completeCommandName, batchCommandName, stopCommandName} {
			out[b.cfg.commandTopic(name, part)] = fmt.Sprintf("%s.%s.p%d", b.cfg.TopicPrefix, name, part)
		}
	}
	return out
}

// restoreGroups creates the consumer groups that Redis no longer has
// (reading from the start of their streams) and reports how many it
// created. watermill-redisstream creates a group only when it subscribes:
// after Redis restarted without its data, every read fails with NOGROUP
// and nothing would be consumed again.
func (b *bus) restoreGroups(ctx context.Context) (int, error) {
	var cmds []*redis.StatusCmd
	_, _ = b.cfg.Redis.Pipelined(ctx, func(pipe redis.Pipeliner) error { // one round trip; errors per command below
		for topic, group := range b.groups() {
			cmds = append(cmds, pipe.XGroupCreateMkStream(ctx, topic, group, "0"))
		}
		return nil
	})
	created := 0
	for _, c := range cmds {
		err := c.Err()
		switch {
		case err == nil:
			created++
		case strings.HasPrefix(err.Error(), "BUSYGROUP"):
		default:
			return created, err
		}
	}
	return created, nil
}

// closeUnstarted closes the subscribers and the publisher of a bus whose
// router failed to start (closing such a router waits its whole
// CloseTimeout for handlers that never ran).
func (b *bus) closeUnstarted() {
	for _, s := range b.subs {
		_ = s.Close()
	}
	_ = b.pub.Close()
}

// close stops the router (it waits for the handlers in flight) and then
// the pub/sub.
func (b *bus) close() error {
	var errs []error
	if err := b.router.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close the command router: %w", err))
	}
	for _, s := range b.subs {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := b.pub.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close the command publisher: %w", err))
	}
	return errors.Join(errs...)
}

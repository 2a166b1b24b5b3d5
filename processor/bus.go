package processor

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
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
	subs       []message.Subscriber
	deadLetter *DeadLetters
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

func newBus(cfg *Config, dl *DeadLetters, complete func(context.Context, *command.CompleteRepetition) error, stop func(context.Context, *StopOfflineQueue) error) (*bus, error) {
	b := &bus{
		cfg:        cfg,
		poison:     cfg.TopicPrefix + ".commands.deadletters",
		marshaler:  cqrs.JSONMarshaler{GenerateName: cqrs.StructName},
		wmLogger:   watermill.NewSlogLogger(cfg.Logger.With("component", "processor-bus")),
		deadLetter: dl,
	}
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
	poison, err := middleware.PoisonQueue(b.pub, b.poison)
	if err != nil {
		return nil, err
	}
	retry := middleware.Retry{
		MaxRetries:      cfg.MaxRetries,
		InitialInterval: cfg.RetryInitial,
		MaxInterval:     cfg.RetryMax,
		Multiplier:      2,
		ShouldRetry:     func(p middleware.RetryParams) bool { return retryable(p.Err) },
		// Each attempt gets the message's own context back.
		ResetContextOnRetry: true,
		Logger:              b.wmLogger,
	}
	for part := 0; part < cfg.Partitions; part++ {
		hs := []partitionHandler{
			{CommandHandler: cqrs.NewCommandHandler(fmt.Sprintf("%s.p%d", completeCommandName, part), complete), partition: part},
			{CommandHandler: cqrs.NewCommandHandler(fmt.Sprintf("%s.p%d", stopCommandName, part), stop), partition: part},
		}
		for _, h := range hs {
			rh, err := cp.AddHandler(h)
			if err != nil {
				return nil, fmt.Errorf("add command handler %s: %w", h.HandlerName(), err)
			}
			// Outermost first: a command that still fails after the
			// retries goes to the poison queue (and is acked).
			rh.AddMiddleware(poison, retry.Middleware)
		}
	}

	dlSub, err := b.subscriber("deadletters")
	if err != nil {
		return nil, err
	}
	dlRetry := middleware.Retry{MaxRetries: 20, InitialInterval: 100 * time.Millisecond, MaxInterval: 5 * time.Second, Multiplier: 2, Logger: b.wmLogger}
	h := router.AddConsumerHandler("deadletters", b.poison, dlSub, func(msg *message.Message) error {
		return dl.store(msg.Context(), msg, b.marshaler.NameFromMessage(msg))
	})
	h.AddMiddleware(dlRetry.Middleware)
	return b, nil
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
		// another after this idle time.
		MaxIdleTime:   max(5*time.Second, 2*b.cfg.RetryMax),
		ClaimInterval: time.Second,
		BlockTime:     100 * time.Millisecond,
		OldestId:      "0",
		// Never block forever on the first read, so Close returns.
		DisableIndefiniteInitialBlock: true,
	}, b.wmLogger)
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

// close stops the router (it waits for the handlers in flight) and then
// the pub/sub.
// groups lists the Redis streams the bus consumes and their consumer
// groups (nil on the GoChannel).
func (b *bus) groups() map[string]string {
	if b.gochan != nil {
		return nil
	}
	out := map[string]string{b.poison: b.cfg.TopicPrefix + ".deadletters"}
	for part := 0; part < b.cfg.Partitions; part++ {
		for _, name := range []string{completeCommandName, stopCommandName} {
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

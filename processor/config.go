package processor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/projections"
)

// Config configures a Processor. The zero value of every optional field
// means its default.
type Config struct {
	// Store is the event log. Required.
	Store eventstore.Store
	// DB holds the schedule, the claims and the dead letters (migration
	// 0030; the relay keeps its checkpoint there too):
	// projections.NewPostgresDB of the event store's pool, or
	// projections.NewSQLiteStoreDB of the SQLite store. Required.
	DB projections.DB
	// Commands configures the processor's own command handlers (rules,
	// cache size); its Clock is replaced by Clock and Optimistic is set.
	// Commands.Rules must be the rules the rest of the application
	// decides by.
	Commands command.Config
	// Queues, when set, is the queue cache of this process's command side
	// (command.Handlers.Queues, over the same Store): the processor's
	// completions then share it (command.Queues.Share) instead of a cache
	// of their own, so that a completion after a player's command, and a
	// command after a completion, find the queue up to date. Commands
	// still configures the processor's capped handlers (OfflineCap).
	Queues *command.Queues
	// Clock gives the time of claims and commands. Default SystemClock.
	Clock Clock
	// Owner names this instance in its claims. Default host-pid-random.
	Owner string
	// BatchSize is the most due repetitions claimed per poll. Default 256.
	BatchSize int
	// ClaimTTL is how long a claim holds: a killed processor's claims are
	// taken over this long after it last renewed them. A live instance
	// renews its claims while their repetitions are in the schedule, up to
	// 12×ClaimTTL after it took them (see renewClaims). It also bounds how
	// long a killed instance's commands wait on Redis (see the package
	// doc, "Failover"): every repetition of a killed instance completes
	// within ClaimTTL + max(MaxSleep, 1 s) of its death. Default 5 s.
	ClaimTTL time.Duration
	// MaxSleep bounds the sleep between polls when nothing is due sooner
	// (a change of the schedule wakes the loop earlier). Default 1 s.
	MaxSleep time.Duration
	// OfflineCap is how much offline progress a queue gets: when its
	// running repetition has been due for longer than this, the processor
	// completes what fell due in the OfflineCap after that due time and
	// stops the queue there, with a reason the player sees. Default 24 h.
	OfflineCap time.Duration
	// Partitions is the number of command topics; commands of one player
	// always go to the same one (in order), partitions run concurrently.
	// Default 8.
	Partitions int
	// Redis, when set, carries commands on Redis streams (watermill-
	// redisstream) with consumer groups, so every instance shares them;
	// nil uses an in-process GoChannel.
	Redis redis.UniversalClient
	// TopicPrefix starts every topic (and Redis stream) name. Default
	// "taskqueue".
	TopicPrefix string
	// MaxRetries bounds the retries of a command failing for a permanent
	// reason (exponential backoff from RetryInitial to RetryMax) before it
	// goes to the dead letter queue; a transient failure (the database
	// away) is retried until it passes and never goes there. Defaults 5,
	// 100 ms, 5 s.
	MaxRetries   int
	RetryInitial time.Duration
	RetryMax     time.Duration
	// ErrorBackoffMax bounds the wait between attempts while a dependency
	// is away (the due loop's and the commands' retries back off
	// exponentially from 100 ms, with jitter, up to it). Default 5 s.
	ErrorBackoffMax time.Duration
	// QueryTimeout bounds every database call of the due loop (claims,
	// renewals, releases, the next due time, pruning): a partitioned
	// database fails the call after it, like a refused connection, instead
	// of holding the loop. Default 5 s.
	QueryTimeout time.Duration
	// CommandTimeout bounds each attempt of a command on the bus (a
	// completion; each step of an offline stop); an attempt that runs out
	// is retried like any transient failure. Default 10 s.
	CommandTimeout time.Duration
	// Observer hears of the processor's outages (metrics.Registry: the
	// components "processor due loop", "processor commands", "processor
	// redis", and the schedule's runner's "projection processor_schedule").
	// May be nil.
	Observer faults.Observer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Owner == "" {
		host, _ := os.Hostname()
		c.Owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8])
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 256
	}
	if c.ClaimTTL <= 0 {
		c.ClaimTTL = 5 * time.Second
	}
	if c.MaxSleep <= 0 {
		c.MaxSleep = time.Second
	}
	if c.OfflineCap <= 0 {
		c.OfflineCap = 24 * time.Hour
	}
	if c.Partitions <= 0 {
		c.Partitions = 8
	}
	if c.TopicPrefix == "" {
		c.TopicPrefix = "taskqueue"
	}
	if c.MaxRetries <= 0 {
		c.MaxRetries = 5
	}
	if c.RetryInitial <= 0 {
		c.RetryInitial = 100 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Second
	}
	if c.ErrorBackoffMax <= 0 {
		c.ErrorBackoffMax = 5 * time.Second
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = 5 * time.Second
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem of c at once (after defaults).
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("processor: Config.Store is required"))
	}
	if c.DB == nil {
		errs = append(errs, errors.New("processor: Config.DB is required"))
	}
	if err := c.Commands.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("processor: Config.Commands: %w", err))
	}
	if c.BatchSize > 10000 {
		errs = append(errs, fmt.Errorf("processor: BatchSize %d is over 10000", c.BatchSize))
	}
	if c.Partitions > 1024 {
		errs = append(errs, fmt.Errorf("processor: Partitions %d is over 1024", c.Partitions))
	}
	if c.ClaimTTL > 0 && c.ClaimTTL < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("processor: ClaimTTL %s is under 100ms", c.ClaimTTL))
	}
	if c.OfflineCap > 0 && c.OfflineCap < time.Minute {
		errs = append(errs, fmt.Errorf("processor: OfflineCap %s is under a minute", c.OfflineCap))
	}
	if c.RetryInitial > 0 && c.RetryMax > 0 && c.RetryMax < c.RetryInitial {
		errs = append(errs, fmt.Errorf("processor: RetryMax %s is under RetryInitial %s", c.RetryMax, c.RetryInitial))
	}
	return errors.Join(errs...)
}

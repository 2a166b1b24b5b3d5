package processor

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/jackc/pgx/v5"

	"github.com/taskqueue/taskqueue/projections"
)

// DeadLetter is a command that failed after every retry, as GET
// /api/admin/deadletters lists it.
type DeadLetter struct {
	// ID is the failed message's UUID.
	ID string `json:"id"`
	// Topic is the command topic it came from (and is re-sent to).
	Topic string `json:"topic"`
	// Command is the command's name, e.g. "CompleteRepetition".
	Command string `json:"command"`
	// Payload is the command's JSON.
	Payload json.RawMessage `json:"payload"`
	// Error is the last error, as the PoisonQueue recorded it.
	Error         string     `json:"error"`
	CorrelationID string     `json:"correlationId"`
	FailedAt      time.Time  `json:"failedAt"`
	RetriedAt     *time.Time `json:"retriedAt"`
	Retries       int        `json:"retries"`
}

// ErrDeadLetterNotFound is returned by Retry for an unknown ID.
var ErrDeadLetterNotFound = errors.New("dead letter not found")

// ErrNotRunning: the processor is starting or stopping, so a dead letter
// cannot be re-sent now (HTTP 503: try again).
var ErrNotRunning = errors.New("the processor is not running")

// DeadLetters is the durable dead letter queue (table
// processor_dead_letters). Safe for concurrent use.
type DeadLetters struct {
	db    projections.DB
	clock Clock
	pub   func() message.Publisher // the bus's publisher, once running
}

// NewDeadLetters returns the dead letter queue in db. A Processor has one
// (Processor.DeadLetters); the admin API may use its own over the same DB
// to list, but retries need a running Processor's.
func NewDeadLetters(db projections.DB, clock Clock) *DeadLetters {
	if clock == nil {
		clock = SystemClock{}
	}
	return &DeadLetters{db: db, clock: clock}
}

// WithPublisher returns a copy of d whose Retry publishes to pub: an
// instance that runs no processor (`serve` with TASKQUEUE_PROCESSOR=false)
// re-sends dead letters onto the Redis command streams that the
// processors elsewhere consume (pub must be a Redis stream publisher
// writing to the streams of the processors' Config.Redis and TopicPrefix).
func (d *DeadLetters) WithPublisher(pub message.Publisher) *DeadLetters {
	c := *d
	c.pub = func() message.Publisher { return pub }
	return &c
}

// store records a poisoned message; storing the same message twice (a
// redelivery) keeps the first.
func (d *DeadLetters) store(ctx context.Context, msg *message.Message, name string) error {
	meta, err := json.Marshal(msg.Metadata)
	if err != nil {
		return fmt.Errorf("encode the metadata of dead letter %s: %w", msg.UUID, err)
	}
	err = d.db.InTx(ctx, func(tx projections.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO processor_dead_letters
			(id, topic, command_name, payload, metadata, error, correlation_id, failed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
			msg.UUID, msg.Metadata.Get(middleware.PoisonedTopicKey), name, string(msg.Payload), string(meta),
			msg.Metadata.Get(middleware.ReasonForPoisonedKey), middleware.MessageCorrelationID(msg), d.clock.Now())
		return err
	})
	if err != nil {
		return fmt.Errorf("store dead letter %s: %w", msg.UUID, err)
	}
	return nil
}

// List returns up to limit dead letters, newest first, that were not
// retried (all of them when includeRetried).
func (d *DeadLetters) List(ctx context.Context, limit int, includeRetried bool) ([]DeadLetter, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	q := `SELECT id, topic, command_name, payload, error, correlation_id, failed_at, retried_at, retries
		FROM processor_dead_letters`
	if !includeRetried {
		q += ` WHERE retried_at IS NULL`
	}
	q += ` ORDER BY failed_at DESC, id LIMIT $1`
	rows, err := d.db.Query(ctx, q, limit)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	out := []DeadLetter{}
	for rows.Next() {
		var dl DeadLetter
		var payload string
		var failed, retried projections.Time
		if err := rows.Scan(&dl.ID, &dl.Topic, &dl.Command, &payload, &dl.Error, &dl.CorrelationID, &failed, &retried, &dl.Retries); err != nil {
			return nil, fmt.Errorf("scan a dead letter: %w", err)
		}
		dl.Payload = json.RawMessage(payload)
		dl.FailedAt = failed.Time
		if !retried.IsZero() {
			t := retried.Time
			dl.RetriedAt = &t
		}
		out = append(out, dl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return out, nil
}

// Retry re-sends dead letter id to its command topic as a new message
// (same payload and metadata, minus the poison marks) and marks it
// retried. If it fails again it comes back as a new dead letter. It needs
// a running Processor (the one this DeadLetters belongs to). On the
// embedded GoChannel it returns once the command was handled (or failed
// again after its retries); on Redis, once it is queued.
func (d *DeadLetters) Retry(ctx context.Context, id string) error {
	var topic, payload, meta string
	err := d.db.QueryRow(ctx, `SELECT topic, payload, metadata FROM processor_dead_letters WHERE id = $1`, id).Scan(&topic, &payload, &meta)
	if err != nil {
		if isNoRows(err) {
			return fmt.Errorf("retry dead letter %q: %w", id, ErrDeadLetterNotFound)
		}
		return fmt.Errorf("retry dead letter %s: %w", id, err)
	}
	if d.pub == nil || d.pub() == nil {
		return fmt.Errorf("retry dead letter %s: %w", id, ErrNotRunning)
	}
	msg := message.NewMessage(watermill.NewUUID(), []byte(payload))
	if err := json.Unmarshal([]byte(meta), &msg.Metadata); err != nil {
		return fmt.Errorf("retry dead letter %s: decode its metadata: %w", id, err)
	}
	for _, k := range []string{middleware.ReasonForPoisonedKey, middleware.PoisonedTopicKey, middleware.PoisonedHandlerKey, middleware.PoisonedSubscriberKey} {
		delete(msg.Metadata, k)
	}
	msg.Metadata.Set("retry_of", id)
	if err := d.pub().Publish(topic, msg); err != nil {
		return fmt.Errorf("retry dead letter %s: publish to %s: %w", id, topic, err)
	}
	err = d.db.InTx(ctx, func(tx projections.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE processor_dead_letters SET retried_at = $1, retries = retries + 1 WHERE id = $2`, d.clock.Now(), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("retry dead letter %s: mark it retried: %w", id, err)
	}
	return nil
}

func isNoRows(err error) bool {
	return errors.Is(err, pgx.ErrNoRows) || errors.Is(err, sql.ErrNoRows)
}

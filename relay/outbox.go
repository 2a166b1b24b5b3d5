package relay

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/eventstore"
)

// A PostgreSQL deployment without Redis publishes its integration events
// into an outbox in its own database, with watermill-sql: one table per
// topic, "watermill_<topic>" (topics as on Redis: Topic), one row per
// message with the same envelope as a Redis stream entry (uuid, metadata
// as a JSON object of strings, payload: the JSON IntegrationEvent). A
// consumer reads them with watermill-sql's subscriber
// (NewOutboxSubscriber in Go) or any SQL client; the relay's checkpoint,
// lease and re-publishing (taskqueue relay --from) are the same as on
// Redis, and delivery is at least once (consumers dedupe by uuid). The
// relay (Config.Outbox) writes each batch and the checkpoint after it in
// one transaction: one commit, one WAL flush, per batch. Published one
// message per transaction, the outbox cost a flush per message, more than
// the disk of docs/BENCHMARKS.md flushes in a second at 500 commands/s
// (the relay fell ever further behind, and every append's commit queued
// behind its flushes).
//
// A consumer's reading transaction locks its offsets row until it acks,
// and so, like any writing transaction of the cluster, holds back every
// reader of the event log while it is open (docs/EVENTS.md): consumers
// must ack promptly (their AckDeadline bounds it; OutboxAckDeadline is the
// default of NewOutboxSubscriber).

// IntegrationTypes are the integration event types, one topic each.
var IntegrationTypes = []string{TypeTaskStarted, TypeTaskCompleted, TypeTaskFailed, TypeQueueUpdated, TypePlayerOffline, TypePlayerForgotten}

// OutboxAckDeadline is NewOutboxSubscriber's AckDeadline.
const OutboxAckDeadline = 5 * time.Second

// OutboxRetention is how long the outbox keeps a message (SweepOutbox).
const OutboxRetention = 7 * 24 * time.Hour

func outboxSchema() wsql.DefaultPostgreSQLSchema {
	return wsql.DefaultPostgreSQLSchema{GeneratePayloadType: func(string) string { return "JSONB" }}
}

// NewOutboxPublisher returns the publisher of integration events into the
// outbox tables of pool's database, creating a topic's table at its first
// message.
func NewOutboxPublisher(pool *pgxpool.Pool, logger watermill.LoggerAdapter) (message.Publisher, error) {
	pub, err := wsql.NewPublisher(wsql.BeginnerFromPgx(pool), wsql.PublisherConfig{
		SchemaAdapter: outboxSchema(), AutoInitializeSchema: true,
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("open the outbox publisher: %w", err)
	}
	return pub, nil
}

// publishOutbox writes the messages of events into the outbox
// (Config.Outbox) in one transaction and, when move is not nil, moves the
// checkpoint from move[0] to move[1] in it: the batch and its checkpoint
// commit together or not at all (errCheckpointMoved when another relay
// moved it: nothing is published). Each topic's messages are one insert,
// in log order; all of them get the transaction's ID, so a consumer reads
// them in that order (watermill-sql orders a topic by transaction ID, then
// offset). It returns how many messages it wrote.
func (r *Relay) publishOutbox(ctx context.Context, f *followed, events []eventstore.RecordedEvent, move *[2]eventstore.Position) (int, error) {
	var (
		topics  []string
		byTopic = map[string][]*message.Message{}
		n       int
	)
	for _, e := range events {
		msgs, err := r.messages(ctx, f, e)
		if err != nil {
			return 0, err
		}
		for _, m := range msgs {
			t := Topic(r.cfg.TopicPrefix, m.Metadata.Get(MetaType))
			if _, ok := byTopic[t]; !ok {
				topics = append(topics, t)
			}
			byTopic[t] = append(byTopic[t], m)
			n++
		}
	}
	// A read batch gets its checkpoint even when ctx just ended.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, t := range topics {
		if err := r.createOutboxTable(ctx, t); err != nil {
			return 0, err
		}
	}
	err := pgx.BeginFunc(ctx, r.cfg.Outbox, func(tx pgx.Tx) error {
		if len(topics) > 0 {
			pub, err := wsql.NewPublisher(wsql.TxFromPgx(tx), wsql.PublisherConfig{SchemaAdapter: outboxSchema()}, watermill.NopLogger{})
			if err != nil {
				return err
			}
			for _, t := range topics {
				msgs := byTopic[t]
				msgs[0].SetContext(ctx) // the insert runs under the first message's context
				if err := pub.Publish(t, msgs...); err != nil {
					return fmt.Errorf("relay: publish %d messages into the outbox of %s: %w", len(msgs), t, err)
				}
			}
		}
		if move == nil {
			return nil
		}
		return r.moveCheckpoint(ctx, func(ctx context.Context, q string, args ...any) (int64, error) {
			tag, err := tx.Exec(ctx, q, args...)
			return tag.RowsAffected(), err
		}, move[0], move[1])
	})
	if err != nil {
		return 0, err
	}
	r.pubOutage.Recovered()
	return n, nil
}

// createOutboxTable creates the outbox table of topic if it does not exist
// (once per Relay), outside the batch's transaction.
func (r *Relay) createOutboxTable(ctx context.Context, topic string) error {
	if _, ok := r.topics.Load(topic); ok {
		return nil
	}
	queries, err := outboxSchema().SchemaInitializingQueries(wsql.SchemaInitializingQueriesParams{Topic: topic})
	if err != nil {
		return fmt.Errorf("relay: create the outbox table of %s: %w", topic, err)
	}
	err = pgx.BeginFunc(ctx, r.cfg.Outbox, func(tx pgx.Tx) error {
		for _, q := range queries {
			if _, err := tx.Exec(ctx, q.Query, q.Args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("relay: create the outbox table of %s: %w", topic, err)
	}
	r.topics.Store(topic, true)
	return nil
}

// NewOutboxSubscriber returns a watermill subscriber of the outbox for
// consumer group group: what a Go consumer of a PostgreSQL deployment
// without Redis runs.
func NewOutboxSubscriber(pool *pgxpool.Pool, group string, logger watermill.LoggerAdapter) (message.Subscriber, error) {
	deadline := OutboxAckDeadline
	sub, err := wsql.NewSubscriber(wsql.BeginnerFromPgx(pool), wsql.SubscriberConfig{
		ConsumerGroup: group, SchemaAdapter: outboxSchema(), OffsetsAdapter: wsql.DefaultPostgreSQLOffsetsAdapter{},
		InitializeSchema: true, AckDeadline: &deadline, PollInterval: 100 * time.Millisecond,
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("open the outbox subscriber: %w", err)
	}
	return sub, nil
}

// SweepOutbox deletes the outbox messages older than OutboxRetention from
// the tables of topics that exist; the relay's instance runs it daily.
func SweepOutbox(ctx context.Context, pool *pgxpool.Pool, topics []string) (int64, error) {
	var deleted int64
	for _, topic := range topics {
		table := outboxSchema().MessagesTable(topic)
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
			return deleted, fmt.Errorf("sweep the outbox: %w", err)
		}
		if !exists {
			continue
		}
		tag, err := pool.Exec(ctx, `DELETE FROM `+table+` WHERE created_at < now() - $1::interval`,
			fmt.Sprintf("%d seconds", int64(OutboxRetention.Seconds())))
		if err != nil {
			return deleted, fmt.Errorf("sweep the outbox of %s: %w", topic, err)
		}
		deleted += tag.RowsAffected()
	}
	return deleted, nil
}

// ForgetInOutbox deletes player's messages from the outbox tables of
// topics (a forgotten player: docs/API.md, "Forgetting a player"); a
// consumer that had not read them never will. The player.forgotten
// message is not among topics: it must reach the consumers, and it names
// the player (RefuseAnalystOutbox keeps the analyst role out of its
// table).
func ForgetInOutbox(ctx context.Context, pool *pgxpool.Pool, topics []string, player string) (int64, error) {
	var deleted int64
	for _, topic := range topics {
		table := outboxSchema().MessagesTable(topic)
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
			return deleted, fmt.Errorf("forget %s in the outbox: %w", player, err)
		}
		if !exists {
			continue
		}
		tag, err := pool.Exec(ctx, `DELETE FROM `+table+` WHERE payload->>'playerId' = $1`, player)
		if err != nil {
			return deleted, fmt.Errorf("forget %s in the outbox of %s: %w", player, topic, err)
		}
		deleted += tag.RowsAffected()
	}
	return deleted, nil
}

// RefuseAnalystOutbox revokes the analyst role's privileges on the outbox
// table of topic (player.forgotten's: its messages name forgotten
// players), when both exist.
func RefuseAnalystOutbox(ctx context.Context, pool *pgxpool.Pool, topic string) error {
	table := outboxSchema().MessagesTable(topic)
	_, err := pool.Exec(ctx, `DO $$ BEGIN
		IF to_regclass('`+strings.ReplaceAll(table, "'", "''")+`') IS NOT NULL AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'taskqueue_analyst') THEN
			EXECUTE 'REVOKE ALL ON `+strings.ReplaceAll(table, "'", "''")+` FROM taskqueue_analyst';
		END IF;
	END $$`)
	if err != nil {
		return fmt.Errorf("refuse the analyst the outbox of %s: %w", topic, err)
	}
	return nil
}

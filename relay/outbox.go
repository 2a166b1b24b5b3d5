package relay

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A PostgreSQL deployment without Redis publishes its integration events
// into an outbox in its own database, with watermill-sql: one table per
// topic, "watermill_<topic>" (topics as on Redis: Topic), one row per
// message with the same envelope as a Redis stream entry (uuid, metadata
// as a JSON object of strings, payload: the JSON IntegrationEvent). A
// consumer reads them with watermill-sql's subscriber
// (NewOutboxSubscriber in Go) or any SQL client; the relay's checkpoint,
// lease and re-publishing (taskqueue relay --from) are the same as on
// Redis, and delivery is at least once (consumers dedupe by uuid).
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

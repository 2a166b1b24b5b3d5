-- The processor's tables (processor/). docs/EVENTS.md and the processor
-- package doc describe them.

-- Generation v1 of the "processor_schedule" projection (processor.Schedule):
-- one row per player with a running repetition, keyed by the queue's stream.
-- A rebuild creates processor_schedule__<gen> with the same shape and
-- re-points the view.
CREATE TABLE processor_schedule__v1 (
	stream_id  TEXT        PRIMARY KEY,
	player_id  TEXT        NOT NULL,
	task_id    TEXT        NOT NULL,
	number     INTEGER     NOT NULL,
	due_at     TIMESTAMPTZ NOT NULL,
	started_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX processor_schedule__v1_due ON processor_schedule__v1 (due_at);
CREATE VIEW processor_schedule AS SELECT * FROM processor_schedule__v1;

-- Claims (leases) of due repetitions by processor instances. A claim is for
-- one repetition (task_id, number) of one stream and holds until expires_at;
-- an expired claim, or one for another repetition, is taken by the next
-- claimer (INSERT ... ON CONFLICT DO UPDATE ... WHERE), so a killed
-- processor's work is taken over once its claims expire.
CREATE TABLE processor_claims (
	stream_id  TEXT        PRIMARY KEY,
	task_id    TEXT        NOT NULL,
	number     INTEGER     NOT NULL,
	owner      TEXT        NOT NULL,
	expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX processor_claims_owner ON processor_claims (owner);

-- The dead letter queue: commands that failed after every retry, with the
-- error, as the watermill message that carried them (payload and metadata),
-- so that an admin can list and re-send them.
CREATE TABLE processor_dead_letters (
	id             TEXT        PRIMARY KEY,
	topic          TEXT        NOT NULL,
	command_name   TEXT        NOT NULL,
	payload        TEXT        NOT NULL,
	metadata       TEXT        NOT NULL,
	error          TEXT        NOT NULL,
	correlation_id TEXT        NOT NULL DEFAULT '',
	failed_at      TIMESTAMPTZ NOT NULL,
	retried_at     TIMESTAMPTZ,
	retries        INTEGER     NOT NULL DEFAULT 0
);
CREATE INDEX processor_dead_letters_failed ON processor_dead_letters (failed_at);

-- The relay's durable checkpoint: the eventstore.Position (both parts) up to
-- which integration events were published.
CREATE TABLE processor_relay_checkpoints (
	name            TEXT        PRIMARY KEY,
	commit_position BIGINT      NOT NULL,
	seq_position    BIGINT      NOT NULL,
	updated_at      TIMESTAMPTZ NOT NULL
);

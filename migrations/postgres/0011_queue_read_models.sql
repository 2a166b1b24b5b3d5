-- Read models of the "queues" projection (projections/queues.go), generation
-- v1, and the views that readers use. docs/READ_MODELS.md documents every
-- column. A rebuild creates queue_status__<gen> and task_history__<gen> with
-- the same shape (CREATE TABLE ... LIKE) and re-points the views.

-- One row per player: the queue as the last applied event left it.
CREATE TABLE queue_status__v1 (
	player_id              TEXT             PRIMARY KEY,
	stream_version         BIGINT           NOT NULL,
	running                BOOLEAN          NOT NULL,
	stopped                BOOLEAN          NOT NULL,
	stopped_reason         TEXT             NOT NULL DEFAULT '',
	head_task_id           TEXT,
	head_task_type         TEXT,
	repetition_number      INTEGER,
	repetition_started_at  TIMESTAMPTZ,
	repetition_due_at      TIMESTAMPTZ,
	repetition_duration_ms BIGINT,
	repetition_efficiency  DOUBLE PRECISION,
	task_count             INTEGER          NOT NULL,
	tasks                  JSONB            NOT NULL,
	tasks_enqueued         BIGINT           NOT NULL DEFAULT 0,
	tasks_completed        BIGINT           NOT NULL DEFAULT 0,
	tasks_failed           BIGINT           NOT NULL DEFAULT 0,
	tasks_cancelled        BIGINT           NOT NULL DEFAULT 0,
	repetitions_completed  BIGINT           NOT NULL DEFAULT 0,
	xp_gained              BIGINT           NOT NULL DEFAULT 0,
	created_at             TIMESTAMPTZ      NOT NULL,
	updated_at             TIMESTAMPTZ      NOT NULL,
	last_position          TEXT             NOT NULL
);
-- "active queues by last update" (running) and "inactive queues" (not running).
CREATE INDEX queue_status__v1_running_updated ON queue_status__v1 (running, updated_at);

-- One row per finished task, partitioned by day of finished_at; partitions
-- are created by the projection as needed and dropped by the retention sweep.
CREATE TABLE task_history__v1 (
	player_id        TEXT             NOT NULL,
	task_id          TEXT             NOT NULL,
	task_type        TEXT             NOT NULL,
	outcome          TEXT             NOT NULL CHECK (outcome IN ('completed', 'failed', 'cancelled')),
	reason           TEXT             NOT NULL DEFAULT '',
	count            INTEGER          NOT NULL,
	repetitions_done INTEGER          NOT NULL,
	enqueued_at      TIMESTAMPTZ      NOT NULL,
	started_at       TIMESTAMPTZ,
	finished_at      TIMESTAMPTZ      NOT NULL,
	duration_ms      BIGINT,
	xp               BIGINT           NOT NULL,
	items_granted    JSONB            NOT NULL,
	items_consumed   JSONB            NOT NULL,
	efficiency       DOUBLE PRECISION,
	stream_version   BIGINT           NOT NULL,
	PRIMARY KEY (player_id, finished_at, task_id)
) PARTITION BY RANGE (finished_at);
CREATE INDEX task_history__v1_type_finished ON task_history__v1 (task_type, finished_at);
CREATE INDEX task_history__v1_finished ON task_history__v1 (finished_at);

CREATE VIEW queue_status AS SELECT * FROM queue_status__v1;
CREATE VIEW task_history AS SELECT * FROM task_history__v1;

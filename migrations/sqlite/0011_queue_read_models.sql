-- Read models of the "queues" projection (projections/queues.go), generation
-- v1, and the views that readers use. docs/READ_MODELS.md documents every
-- column. A rebuild copies this DDL (from sqlite_master) under the new
-- generation's names and re-points the views. Times are UTC text,
-- 2006-01-02T15:04:05.000000Z (text order is time order); booleans are 0/1;
-- JSON columns are text.

CREATE TABLE queue_status__v1 (
	player_id              TEXT    PRIMARY KEY,
	stream_version         INTEGER NOT NULL,
	running                INTEGER NOT NULL,
	stopped                INTEGER NOT NULL,
	stopped_reason         TEXT    NOT NULL DEFAULT '',
	head_task_id           TEXT,
	head_task_type         TEXT,
	repetition_number      INTEGER,
	repetition_started_at  TEXT,
	repetition_due_at      TEXT,
	repetition_duration_ms INTEGER,
	repetition_efficiency  REAL,
	task_count             INTEGER NOT NULL,
	tasks                  TEXT    NOT NULL,
	tasks_enqueued         INTEGER NOT NULL DEFAULT 0,
	tasks_completed        INTEGER NOT NULL DEFAULT 0,
	tasks_failed           INTEGER NOT NULL DEFAULT 0,
	tasks_cancelled        INTEGER NOT NULL DEFAULT 0,
	repetitions_completed  INTEGER NOT NULL DEFAULT 0,
	xp_gained              INTEGER NOT NULL DEFAULT 0,
	created_at             TEXT    NOT NULL,
	updated_at             TEXT    NOT NULL,
	last_position          TEXT    NOT NULL
);
CREATE INDEX queue_status__v1_running_updated ON queue_status__v1 (running, updated_at);

CREATE TABLE task_history__v1 (
	player_id        TEXT    NOT NULL,
	task_id          TEXT    NOT NULL,
	task_type        TEXT    NOT NULL,
	outcome          TEXT    NOT NULL CHECK (outcome IN ('completed', 'failed', 'cancelled')),
	reason           TEXT    NOT NULL DEFAULT '',
	count            INTEGER NOT NULL,
	repetitions_done INTEGER NOT NULL,
	enqueued_at      TEXT    NOT NULL,
	started_at       TEXT,
	finished_at      TEXT    NOT NULL,
	duration_ms      INTEGER,
	xp               INTEGER NOT NULL,
	items_granted    TEXT    NOT NULL,
	items_consumed   TEXT    NOT NULL,
	efficiency       REAL,
	stream_version   INTEGER NOT NULL,
	PRIMARY KEY (player_id, finished_at, task_id)
);
CREATE INDEX task_history__v1_type_finished ON task_history__v1 (task_type, finished_at);
CREATE INDEX task_history__v1_finished ON task_history__v1 (finished_at);

CREATE VIEW queue_status AS SELECT * FROM queue_status__v1;
CREATE VIEW task_history AS SELECT * FROM task_history__v1;

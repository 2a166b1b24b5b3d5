-- Bookkeeping of the projection runner (projections.Runner).
--
-- One row per (projection, generation). A generation is one physical build
-- of a projection's tables, named <table>__<generation> (for example
-- queue_status__v1); the view named after each table (queue_status) selects
-- from the active generation. The row's name is the projection's name:
-- renaming a projection in code orphans its checkpoint and rebuilds it.
-- Times are UTC text, 2006-01-02T15:04:05.000000Z.
CREATE TABLE projection_checkpoints (
	name            TEXT    NOT NULL,
	generation      TEXT    NOT NULL,
	version         INTEGER NOT NULL,
	active          INTEGER NOT NULL,
	-- the eventstore.Position up to which the log is applied, both parts
	commit_position INTEGER NOT NULL DEFAULT 0,
	seq_position    INTEGER NOT NULL DEFAULT 0,
	events_applied  INTEGER NOT NULL DEFAULT 0,
	created_at      TEXT    NOT NULL,
	updated_at      TEXT    NOT NULL,
	PRIMARY KEY (name, generation)
);

-- Events an operator skipped because a projection failed on them.
CREATE TABLE projection_skipped_events (
	name            TEXT    NOT NULL,
	generation      TEXT    NOT NULL,
	commit_position INTEGER NOT NULL,
	seq_position    INTEGER NOT NULL,
	event_id        TEXT    NOT NULL,
	event_type      TEXT    NOT NULL,
	stream_id       TEXT    NOT NULL,
	error           TEXT    NOT NULL,
	skipped_by      TEXT    NOT NULL,
	skipped_at      TEXT    NOT NULL,
	PRIMARY KEY (name, generation, commit_position, seq_position)
);

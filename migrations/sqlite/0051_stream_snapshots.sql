-- One snapshot per stream (eventstore.SnapshotStore): an aggregate's state
-- as of a version, so loading a long stream reads only the events after it
-- (the command side snapshots a queue every few hundred events). A cache:
-- deleting rows only makes the next loads longer. event_id is the ID of the
-- event at version, checked against the stream when loading.
CREATE TABLE stream_snapshots (
	stream_id      TEXT    PRIMARY KEY,
	version        BIGINT  NOT NULL,
	event_id       TEXT    NOT NULL,
	schema_version INTEGER NOT NULL,
	data           BLOB    NOT NULL,
	saved_at       BIGINT  NOT NULL
);

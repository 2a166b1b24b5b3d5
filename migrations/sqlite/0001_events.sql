-- The event log of the embedded SQLite backend (eventstore/sqlite).
--
-- position is the global log order. It is the rowid (INTEGER PRIMARY KEY),
-- which SQLite sets to one more than the largest stored, inside the writing
-- transaction; SQLite admits one writer per file at a time, so positions
-- are handed out in commit order and every reader sees a gap-free prefix of
-- the log. "Largest stored plus one" never goes back because events are
-- never deleted: the triggers below make the table append-only. (Not
-- AUTOINCREMENT: it would add a write to sqlite_sequence, a fourth page in
-- the WAL for every append, for a guarantee the triggers already give.)
--
-- Columns are read by name by eventstore/sqlite; renaming one breaks it.
CREATE TABLE events (
	position       INTEGER PRIMARY KEY,
	stream_id      TEXT    NOT NULL,
	version        INTEGER NOT NULL CHECK (version >= 1),
	event_id       TEXT    NOT NULL UNIQUE,
	event_type     TEXT    NOT NULL,
	schema_version INTEGER NOT NULL CHECK (schema_version >= 1),
	-- data is kept as a BLOB so it reads back byte for byte as written.
	data           BLOB    NOT NULL,
	-- occurred_at and recorded_at are Unix microseconds, UTC.
	occurred_at    INTEGER NOT NULL,
	correlation_id TEXT    NOT NULL DEFAULT '',
	causation_id   TEXT    NOT NULL DEFAULT '',
	actor          TEXT    NOT NULL DEFAULT '',
	recorded_at    INTEGER NOT NULL,
	UNIQUE (stream_id, version)
);

-- No index on event_type: subscriptions filter while they scan a position
-- range, and every index costs each commit another page in the WAL.

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN
	SELECT RAISE(ABORT, 'events are append-only: no UPDATE');
END;

CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN
	SELECT RAISE(ABORT, 'events are append-only: no DELETE');
END;

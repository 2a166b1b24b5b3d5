-- Deleted streams (eventstore package doc, "Deleted streams"): the one
-- UPDATE the log allows turns a live event into a tombstone at the same
-- position; nothing else may change a row, and a tombstone never changes.
DROP TRIGGER events_append_only_update;

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
WHEN OLD.event_type = '$deleted' OR NEW.event_type <> '$deleted'
	OR NEW.position <> OLD.position OR NEW.version <> OLD.version
	OR substr(NEW.stream_id, 1, 9) <> '$deleted-'
BEGIN
	SELECT RAISE(ABORT, 'events are append-only: the only UPDATE makes a tombstone');
END;

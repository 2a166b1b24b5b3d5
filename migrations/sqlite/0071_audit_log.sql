-- The audit trail (package audit): one row per security-relevant action.
-- Times are Unix milliseconds. Append-only for the service: triggers
-- refuse UPDATE, and DELETE of a row younger than a day (the retention
-- sweep deletes only older ones).
CREATE TABLE audit_log (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	at         INTEGER NOT NULL,
	action     TEXT    NOT NULL,
	principal  TEXT    NOT NULL,
	role       TEXT    NOT NULL,
	remote     TEXT    NOT NULL,
	target     TEXT    NOT NULL,
	status     INTEGER NOT NULL,
	detail     TEXT    NOT NULL,
	request_id TEXT    NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_principal ON audit_log (principal, at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
	SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_early_delete BEFORE DELETE ON audit_log
	WHEN OLD.at > CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) - 86400000
BEGIN
	SELECT RAISE(ABORT, 'audit_log keeps every row for a day at least');
END;

-- The audit trail (package audit): one row per security-relevant action.
-- Times are Unix milliseconds. Append-only for the service: a trigger
-- refuses UPDATE, and DELETE of a row younger than a day (the retention
-- sweep deletes only older ones). The analyst role may not read it: rows
-- name principals and network addresses, personal data analytics do not
-- need (0072 revokes it again after every grant of 0014).
CREATE TABLE audit_log (
	id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at         BIGINT  NOT NULL,
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

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'UPDATE' THEN
		RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF OLD.at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint - 86400000 THEN
		RAISE EXCEPTION 'audit_log keeps every row for a day at least' USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN OLD;
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'taskqueue_analyst') THEN
		REVOKE ALL ON audit_log FROM taskqueue_analyst;
	END IF;
END
$$;

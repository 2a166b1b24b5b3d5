-- A read-only login role for analysts, taskqueue_analyst, created only when
-- the migrating connection carries the setting taskqueue.analyst_password
-- (the server passes TASKQUEUE_ANALYST_PASSWORD as that run-time parameter,
-- e.g. "...?taskqueue.analyst_password=secret" in the connection string).
-- Without it this migration does nothing: see docs/READ_MODELS.md for the
-- statements to run by hand later. The role may read every table and view
-- of this schema, including ones created later by the server's role (default
-- privileges), and its sessions are read-only.
DO $$
DECLARE
	pw TEXT := current_setting('taskqueue.analyst_password', true);
BEGIN
	IF pw IS NULL OR pw = '' THEN
		RETURN;
	END IF;
	BEGIN
		EXECUTE format('CREATE ROLE taskqueue_analyst LOGIN PASSWORD %L NOSUPERUSER NOCREATEDB NOCREATEROLE', pw);
	EXCEPTION WHEN duplicate_object THEN
		EXECUTE format('ALTER ROLE taskqueue_analyst LOGIN PASSWORD %L', pw);
	END;
	ALTER ROLE taskqueue_analyst SET default_transaction_read_only = on;
	EXECUTE format('GRANT USAGE ON SCHEMA %I TO taskqueue_analyst', current_schema());
	EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO taskqueue_analyst', current_schema());
	EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO taskqueue_analyst', current_schema());
END
$$;

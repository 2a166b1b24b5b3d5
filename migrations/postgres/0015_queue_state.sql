-- queue_status.state: what the queue is doing, in the one word a client
-- shows: 'stopped' (not running), 'idle' (running but empty: nothing to do),
-- 'running' (running with tasks). `running` alone is true for an empty queue,
-- so "active queues" counted idle players. The expression is
-- query.QueueStateOf's (the API's queue view), held to it by a test.
--
-- A generated column, so the projection's code (and its version) does not
-- change and no rebuild is needed. It is added to every generation of the
-- table that exists (a rebuild may have replaced queue_status__v1), and new
-- generations get it from the active one (CREATE TABLE ... LIKE ... INCLUDING
-- ALL). The view is re-created because PostgreSQL expanded its * when it was
-- made.
DO $$
DECLARE
	t      text;
	active text;
BEGIN
	FOR t IN SELECT c.relname FROM pg_class c
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
		AND c.relname LIKE 'queue\_status\_\_%'
	LOOP
		EXECUTE format($ddl$ALTER TABLE %I ADD COLUMN IF NOT EXISTS state TEXT GENERATED ALWAYS AS (
			CASE WHEN NOT running THEN 'stopped' WHEN task_count = 0 THEN 'idle' ELSE 'running' END) STORED$ddl$, t);
		-- "active queues by last update": WHERE state = 'running' ORDER BY updated_at.
		EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (state, updated_at)', t || '_state_updated', t);
	END LOOP;
	SELECT u.table_name INTO active FROM information_schema.view_table_usage u
		WHERE u.view_schema = current_schema() AND u.view_name = 'queue_status';
	IF active IS NOT NULL THEN
		EXECUTE format('CREATE OR REPLACE VIEW queue_status AS SELECT * FROM %I', active);
	END IF;
END $$;

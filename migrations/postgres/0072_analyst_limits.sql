-- Limits of the analyst role taskqueue_analyst (0014_analyst_role), and the
-- table it may not read (audit_log), set under the same condition as the role itself: only when the migrating
-- connection carries taskqueue.analyst_password (the server runs this file
-- again at every start with TASKQUEUE_ANALYST_PASSWORD, after 0014). A
-- bounded number of connections (which the role cannot change), and
-- defaults that end a runaway query and a transaction left open: an open
-- transaction that has an ID holds the log's readers back (see
-- eventstore/postgres). The role can SET these in its own sessions, or
-- ALTER ROLE its own defaults (PostgreSQL lets a role do that); the next
-- start sets them again. What keeps players safe does not depend on them:
-- the role has no write privilege and cannot take the locks that appends
-- and migrations wait for (docs/READ_MODELS.md).
DO $$
DECLARE
	pw TEXT := current_setting('taskqueue.analyst_password', true);
BEGIN
	IF pw IS NULL OR pw = '' THEN
		RETURN;
	END IF;
	ALTER ROLE taskqueue_analyst CONNECTION LIMIT 5;
	ALTER ROLE taskqueue_analyst SET statement_timeout = '60s';
	ALTER ROLE taskqueue_analyst SET idle_in_transaction_session_timeout = '10s';
	ALTER ROLE taskqueue_analyst SET default_transaction_read_only = on;
	-- 0014 grants SELECT on every table; the audit trail is not for
	-- analysts (0071_audit_log).
	REVOKE ALL ON audit_log FROM taskqueue_analyst;
END
$$;

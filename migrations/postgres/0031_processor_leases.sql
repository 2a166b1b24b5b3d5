-- Leases of singleton roles among processor instances (processor.RunLeased):
-- one row per role ("relay:integration"), held by owner until expires_at and
-- renewed by it; an expired lease is taken by the next instance that asks
-- (INSERT ... ON CONFLICT DO UPDATE ... WHERE), so a killed holder's role is
-- taken over once its lease expires.
CREATE TABLE processor_leases (
	name       TEXT        PRIMARY KEY,
	owner      TEXT        NOT NULL,
	expires_at TIMESTAMPTZ NOT NULL
);

-- Leases of singleton roles among processor instances (processor.RunLeased):
-- one row per role ("relay:integration"), held by owner until expires_at and
-- renewed by it; an expired lease is taken by the next instance that asks
-- (INSERT ... ON CONFLICT DO UPDATE ... WHERE), so a killed holder's role is
-- taken over once its lease expires.
-- SQLite: times are UTC text 2006-01-02T15:04:05.000000Z, as projections.DB
-- writes them.
CREATE TABLE processor_leases (
	name       TEXT        PRIMARY KEY,
	owner      TEXT        NOT NULL,
	expires_at TEXT        NOT NULL
);

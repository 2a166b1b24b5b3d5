-- The event log that the read models, the processor's schedule and claims
-- and the relay checkpoint in this database follow (app's bindLog): one row,
-- written at the first start. A deployment that follows another log (another
-- backend, KurrentDB server or namespace) and is pointed at this database
-- refuses to start, instead of mixing two logs' positions in one set of tables.
CREATE TABLE log_binding (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	log      TEXT    NOT NULL,
	bound_at TEXT NOT NULL
);

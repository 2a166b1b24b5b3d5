-- The per-stream write locks of the event store (eventstore/postgres): an
-- append locks the row of its stream's slot, hashtext(stream_id) & 65535,
-- with SELECT ... FOR UPDATE before it writes anything. They replace the
-- advisory locks pg_advisory_xact_lock(0x7471, hashtext(stream_id)), which
-- any role of the database may take (an analyst holding one stalled that
-- stream's appends for as long as it liked): locking a row needs UPDATE on
-- its table, which only the service's role has. SELECT on this table (the
-- analyst's default privilege) allows no lock that conflicts with a row
-- lock. Never UPDATE or DELETE these rows: the rows are the locks.
CREATE TABLE stream_locks (
	slot INTEGER PRIMARY KEY
);
INSERT INTO stream_locks (slot) SELECT generate_series(0, 65535);

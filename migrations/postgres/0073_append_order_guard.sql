-- The event store's group append (eventstore/postgres, many.go) locks the
-- rows of stream_locks of several streams in one statement. PostgreSQL gives
-- the transaction its ID when it locks the first of them, so while it waits
-- for a later one another transaction may append to one of its streams and
-- commit with a later ID: the group's events of that stream would then come
-- before that transaction's in the global order (transaction ID, position),
-- behind versions they follow. The group statement calls this function for
-- such a stream, which aborts the group's transaction with a serialization
-- failure; the store runs the group again in a new transaction.
CREATE FUNCTION taskqueue_append_out_of_order(stream TEXT) RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'stream % was appended to by a later transaction while this one waited for its lock', stream
		USING ERRCODE = 'serialization_failure';
END
$$;

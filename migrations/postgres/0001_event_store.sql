-- The event log of eventstore/postgres. See that package's doc for the
-- reading protocol; in short:
--
--   * every event row is stamped with the ID of the transaction that wrote
--     it (transaction_id, xid8) and a number from an identity (position);
--   * the global log is ordered by (transaction_id, position);
--   * readers of the global log only read rows whose transaction_id is below
--     pg_snapshot_xmin(pg_current_snapshot()), so a transaction that commits
--     late can never land behind a position a reader already passed.
--
-- Data is stored as json (not jsonb): json keeps the text exactly as written,
-- so events read back byte for byte.

CREATE TABLE event_streams (
    stream_id text   PRIMARY KEY,
    version   bigint NOT NULL CHECK (version > 0)
);

CREATE TABLE event_log (
    transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
    position       bigint      GENERATED ALWAYS AS IDENTITY,
    event_id       uuid        NOT NULL,
    stream_id      text        NOT NULL,
    version        bigint      NOT NULL CHECK (version > 0),
    event_type     text        NOT NULL,
    schema_version integer     NOT NULL CHECK (schema_version > 0),
    data           json        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    correlation_id text        NOT NULL DEFAULT '',
    causation_id   text        NOT NULL DEFAULT '',
    actor          text        NOT NULL DEFAULT '',
    recorded_at    timestamptz NOT NULL DEFAULT statement_timestamp(),
    CONSTRAINT event_log_order_key PRIMARY KEY (transaction_id, position),
    CONSTRAINT event_log_stream_version_key UNIQUE (stream_id, version),
    CONSTRAINT event_log_event_id_key UNIQUE (event_id)
);

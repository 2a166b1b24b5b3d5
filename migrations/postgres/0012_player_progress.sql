-- Read model of the "player_progress" projection (projections/progress.go),
-- generation v1, and its view. docs/READ_MODELS.md documents every column.
CREATE TABLE player_progress__v1 (
	player_id      TEXT        PRIMARY KEY,
	skills         JSONB       NOT NULL,
	inventory      JSONB       NOT NULL,
	total_xp       BIGINT      NOT NULL,
	total_level    INTEGER     NOT NULL,
	stream_version BIGINT      NOT NULL,
	updated_at     TIMESTAMPTZ NOT NULL
);
CREATE VIEW player_progress AS SELECT * FROM player_progress__v1;

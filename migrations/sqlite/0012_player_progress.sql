-- Read model of the "player_progress" projection (projections/progress.go),
-- generation v1, and its view. docs/READ_MODELS.md documents every column.
CREATE TABLE player_progress__v1 (
	player_id      TEXT    PRIMARY KEY,
	skills         TEXT    NOT NULL,
	inventory      TEXT    NOT NULL,
	total_xp       INTEGER NOT NULL,
	total_level    INTEGER NOT NULL,
	stream_version INTEGER NOT NULL,
	updated_at     TEXT    NOT NULL
);
CREATE VIEW player_progress AS SELECT * FROM player_progress__v1;

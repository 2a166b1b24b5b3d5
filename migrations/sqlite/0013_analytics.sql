-- Read models of the "analytics" projection (projections/analytics.go),
-- generation v1, and their views. docs/READ_MODELS.md documents every column.
-- Days are UTC text YYYY-MM-DD; hours are UTC text 2006-01-02T15:00:00.000000Z.
CREATE TABLE analytics_task_daily__v1 (
	day              TEXT           NOT NULL,
	task_type        TEXT           NOT NULL,
	completions      INTEGER         NOT NULL,
	failures         INTEGER         NOT NULL,
	cancellations    INTEGER         NOT NULL,
	repetitions      INTEGER         NOT NULL,
	efficiency_sum   REAL           NOT NULL,
	efficiency_count INTEGER         NOT NULL,
	PRIMARY KEY (day, task_type)
);
CREATE TABLE analytics_grants_daily__v1 (
	day    TEXT NOT NULL,
	kind   TEXT NOT NULL CHECK (kind IN ('xp', 'item')),
	name   TEXT NOT NULL,
	amount INTEGER NOT NULL,
	PRIMARY KEY (day, kind, name)
);
CREATE TABLE analytics_active_players_hourly__v1 (
	hour      TEXT      NOT NULL,
	player_id TEXT      NOT NULL,
	events    INTEGER    NOT NULL,
	PRIMARY KEY (hour, player_id)
);
CREATE TABLE analytics_queue_lengths__v1 (
	player_id  TEXT    PRIMARY KEY,
	task_count INTEGER NOT NULL
);
CREATE VIEW analytics_task_daily AS SELECT * FROM analytics_task_daily__v1;
CREATE VIEW analytics_grants_daily AS SELECT * FROM analytics_grants_daily__v1;
CREATE VIEW analytics_active_players_hourly AS SELECT * FROM analytics_active_players_hourly__v1;
CREATE VIEW analytics_queue_lengths AS SELECT * FROM analytics_queue_lengths__v1;

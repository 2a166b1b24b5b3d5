-- Read models of the "analytics" projection (projections/analytics.go),
-- generation v1, and their views. docs/READ_MODELS.md documents every column.
-- Days and hours are UTC, of the game time of the event (its occurred-at).
CREATE TABLE analytics_task_daily__v1 (
	day              DATE             NOT NULL,
	task_type        TEXT             NOT NULL,
	completions      BIGINT           NOT NULL,
	failures         BIGINT           NOT NULL,
	cancellations    BIGINT           NOT NULL,
	repetitions      BIGINT           NOT NULL,
	efficiency_sum   DOUBLE PRECISION NOT NULL,
	efficiency_count BIGINT           NOT NULL,
	PRIMARY KEY (day, task_type)
);
CREATE TABLE analytics_grants_daily__v1 (
	day    DATE   NOT NULL,
	kind   TEXT   NOT NULL CHECK (kind IN ('xp', 'item')),
	name   TEXT   NOT NULL,
	amount BIGINT NOT NULL,
	PRIMARY KEY (day, kind, name)
);
CREATE TABLE analytics_active_players_hourly__v1 (
	hour      TIMESTAMPTZ NOT NULL,
	player_id TEXT        NOT NULL,
	events    BIGINT      NOT NULL,
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

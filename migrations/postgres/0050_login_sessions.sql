-- Login sessions of a deployment without Redis (package sessionstore), so
-- that a restart signs nobody out and every instance sees the same
-- sessions. A row holds the SHA-256 of the session ID, never the ID: the
-- table lets nobody who reads it (an analyst, a backup) act as a session.
-- Times are Unix milliseconds. A row is deleted at sign-out and swept once
-- expired (refreshed_at older than the session TTL).
CREATE TABLE login_sessions (
	id_hash      TEXT   PRIMARY KEY,
	player_id    TEXT   NOT NULL,
	role         TEXT   NOT NULL,
	created_at   BIGINT NOT NULL,
	refreshed_at BIGINT NOT NULL
);
CREATE INDEX login_sessions_refreshed ON login_sessions (refreshed_at);

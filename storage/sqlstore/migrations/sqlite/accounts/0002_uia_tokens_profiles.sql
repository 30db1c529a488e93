-- Refresh tokens live on the access token row they belong to; prev_id is the
-- row a refresh replaced, dropped once the new token is first used.
ALTER TABLE access_tokens ADD COLUMN refresh_hash BLOB;
ALTER TABLE access_tokens ADD COLUMN prev_id BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX access_tokens_refresh ON access_tokens (refresh_hash);
CREATE INDEX access_tokens_prev ON access_tokens (prev_id);

-- User-interactive auth sessions, shared by every process using the database.
CREATE TABLE uia_sessions (
	session_id TEXT PRIMARY KEY,
	op TEXT NOT NULL,
	user_id TEXT NOT NULL DEFAULT '',
	created_ts BIGINT NOT NULL,
	completed TEXT NOT NULL DEFAULT '[]',
	registration_token TEXT NOT NULL DEFAULT ''
);
CREATE INDEX uia_sessions_created ON uia_sessions (created_ts);

-- Registration tokens (m.login.registration_token); NULL means unlimited / never.
CREATE TABLE registration_tokens (
	token TEXT PRIMARY KEY,
	uses_allowed INTEGER,
	pending INTEGER NOT NULL DEFAULT 0,
	completed INTEGER NOT NULL DEFAULT 0,
	expiry_time BIGINT
);

-- Short-lived single-use m.login.token tokens.
CREATE TABLE login_tokens (
	token_hash BLOB PRIMARY KEY,
	user_id TEXT NOT NULL,
	expires_ts BIGINT NOT NULL
);

-- Single-use nonces of shared-secret registration.
CREATE TABLE registration_nonces (
	nonce TEXT PRIMARY KEY,
	created_ts BIGINT NOT NULL
);

-- Profile fields (displayname, avatar_url, m.tz, custom keys) as JSON values.
CREATE TABLE profiles (
	user_id TEXT NOT NULL,
	field TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (user_id, field)
);

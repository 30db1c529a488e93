CREATE TABLE accounts (
	user_id TEXT PRIMARY KEY,
	password_hash TEXT NOT NULL DEFAULT '',
	is_admin BOOLEAN NOT NULL DEFAULT FALSE,
	is_guest BOOLEAN NOT NULL DEFAULT FALSE,
	deactivated BOOLEAN NOT NULL DEFAULT FALSE,
	created_ts BIGINT NOT NULL
);
CREATE TABLE devices (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	display_name TEXT NOT NULL DEFAULT '',
	last_seen_ts BIGINT NOT NULL DEFAULT 0,
	last_seen_ip TEXT NOT NULL DEFAULT '',
	is_guest BOOLEAN NOT NULL DEFAULT FALSE,
	PRIMARY KEY (user_id, device_id)
);
CREATE TABLE access_tokens (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	token_hash BLOB NOT NULL UNIQUE,
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	expires_ts BIGINT NOT NULL DEFAULT 0,
	FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);

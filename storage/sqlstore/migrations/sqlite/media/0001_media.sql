-- Media repository metadata. The bytes are in a content-addressed blob store
-- keyed by sha256 (hex); several rows may share one blob.
CREATE TABLE media (
	origin TEXT NOT NULL,
	media_id TEXT NOT NULL,
	user_id TEXT NOT NULL DEFAULT '',
	content_type TEXT NOT NULL DEFAULT '',
	upload_name TEXT NOT NULL DEFAULT '',
	size BIGINT NOT NULL DEFAULT 0,
	sha256 TEXT NOT NULL DEFAULT '',
	created_ts BIGINT NOT NULL,
	uploaded_ts BIGINT NOT NULL DEFAULT 0,
	expires_ts BIGINT NOT NULL DEFAULT 0,
	last_access_ts BIGINT NOT NULL DEFAULT 0,
	quarantined_by TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (origin, media_id)
);
CREATE INDEX media_sha256 ON media (sha256);
CREATE INDEX media_user ON media (user_id, created_ts);
CREATE INDEX media_last_access ON media (last_access_ts);
CREATE TABLE media_thumbnails (
	origin TEXT NOT NULL,
	media_id TEXT NOT NULL,
	width INTEGER NOT NULL,
	height INTEGER NOT NULL,
	method TEXT NOT NULL,
	animated BOOLEAN NOT NULL,
	content_type TEXT NOT NULL,
	size BIGINT NOT NULL,
	sha256 TEXT NOT NULL,
	actual_width INTEGER NOT NULL,
	actual_height INTEGER NOT NULL,
	created_ts BIGINT NOT NULL,
	PRIMARY KEY (origin, media_id, width, height, method, animated)
);
CREATE INDEX media_thumbnails_sha256 ON media_thumbnails (sha256);
CREATE TABLE url_previews (
	url TEXT PRIMARY KEY,
	og TEXT NOT NULL,
	fetched_ts BIGINT NOT NULL,
	expires_ts BIGINT NOT NULL
);

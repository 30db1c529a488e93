-- openid_tokens are the tokens /user/{userId}/openid/request_token issues,
-- which other services exchange for the user's ID through the federation
-- API's /openid/userinfo (and nothing else). Only their SHA-256 is kept.
CREATE TABLE openid_tokens (
	token_hash BYTEA PRIMARY KEY,
	user_id TEXT NOT NULL,
	expires_ts BIGINT NOT NULL
);
CREATE INDEX openid_tokens_expiry ON openid_tokens (expires_ts);

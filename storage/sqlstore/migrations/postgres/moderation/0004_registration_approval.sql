-- awaiting_approval lists accounts registered while
-- moderation.registration_requires_approval was on and not yet approved by an admin.
CREATE TABLE awaiting_approval (
	user_id TEXT PRIMARY KEY,
	registered_ts BIGINT NOT NULL
);

-- erased_users lists users deactivated with erase: their events are served
-- redacted to users who were not joined to the room when they were sent.
CREATE TABLE erased_users (
	user_id TEXT PRIMARY KEY,
	erased_ts BIGINT NOT NULL
);

-- ratelimit_overrides holds per-user message rate limits set by admins
-- (0 and 0: not rate limited).
CREATE TABLE ratelimit_overrides (
	user_id TEXT PRIMARY KEY,
	messages_per_second DOUBLE PRECISION NOT NULL,
	burst_count INTEGER NOT NULL
);

-- The unique key of push_actions leads with event_id instead of user_id:
-- one event's rows (one per notified user) then sit together in the index,
-- so storing them dirties one index page instead of one per user, and purges
-- by event_id use the index. SQLite cannot alter a table constraint, so the
-- table is rebuilt.
CREATE TABLE push_actions_new (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	event_id TEXT NOT NULL,
	thread_id TEXT NOT NULL,
	event_pos BIGINT NOT NULL,
	ts BIGINT NOT NULL,
	highlight BOOLEAN NOT NULL,
	actions TEXT NOT NULL,
	event TEXT NOT NULL,
	profile_tag TEXT NOT NULL DEFAULT '',
	is_read BOOLEAN NOT NULL DEFAULT FALSE,
	UNIQUE (event_id, user_id)
);
INSERT INTO push_actions_new (id, user_id, room_id, event_id, thread_id, event_pos, ts, highlight, actions, event, profile_tag, is_read)
	SELECT id, user_id, room_id, event_id, thread_id, event_pos, ts, highlight, actions, event, profile_tag, is_read FROM push_actions;
DROP TABLE push_actions;
ALTER TABLE push_actions_new RENAME TO push_actions;
CREATE INDEX push_actions_unread ON push_actions (user_id, room_id, is_read);

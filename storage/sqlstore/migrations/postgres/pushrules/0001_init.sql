-- push_rules holds user-defined rules and overrides of default rules
-- (enabled/actions); priority orders rules of one kind, lower first.
CREATE TABLE push_rules (
	user_id TEXT NOT NULL,
	kind TEXT NOT NULL,
	rule_id TEXT NOT NULL,
	priority BIGINT NOT NULL,
	is_default BOOLEAN NOT NULL,
	enabled BOOLEAN,
	actions TEXT,
	conditions TEXT,
	pattern TEXT,
	PRIMARY KEY (user_id, kind, rule_id)
);
-- push_actions is one row per event that notifies a local user (the
-- /notifications list and the unread counts). thread_id is 'main' for events
-- outside threads.
CREATE TABLE push_actions (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
	UNIQUE (user_id, event_id)
);
CREATE INDEX push_actions_unread ON push_actions (user_id, room_id, is_read);
-- push_changes records when a user's counts for a room were reset, so that
-- sync can bring the room back with new counts (notif stream position).
CREATE TABLE push_changes (
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	stream_pos BIGINT NOT NULL,
	PRIMARY KEY (user_id, room_id)
);
CREATE INDEX push_changes_pos ON push_changes (user_id, stream_pos);
-- push_read_upto is how far each receipt of a user read a room thread ('' for
-- unthreaded receipts), so notifications stored after the receipt (push rule
-- evaluation runs after the event is persisted) are born read.
CREATE TABLE push_read_upto (
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	thread_id TEXT NOT NULL,
	event_pos BIGINT NOT NULL,
	PRIMARY KEY (user_id, room_id, thread_id)
);
CREATE TABLE pushers (
	user_id TEXT NOT NULL,
	app_id TEXT NOT NULL,
	pushkey TEXT NOT NULL,
	kind TEXT NOT NULL,
	app_display_name TEXT NOT NULL,
	device_display_name TEXT NOT NULL,
	profile_tag TEXT NOT NULL,
	lang TEXT NOT NULL,
	data TEXT NOT NULL,
	device_id TEXT NOT NULL DEFAULT '',
	created_ts BIGINT NOT NULL,
	PRIMARY KEY (user_id, app_id, pushkey)
);
-- push_queue holds notifications still to be sent to push gateways; a row is
-- deleted once the gateway accepted it or it was given up.
CREATE TABLE push_queue (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	user_id TEXT NOT NULL,
	app_id TEXT NOT NULL,
	pushkey TEXT NOT NULL,
	url TEXT NOT NULL,
	payload TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt_ts BIGINT NOT NULL
);
CREATE INDEX push_queue_due ON push_queue (next_attempt_ts);

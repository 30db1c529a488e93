-- Notifications move from one push_actions row per notified user per event
-- to one push_notified row per event (the users it notified, grouped by
-- their actions) and running unread counts per (room, user, thread) in
-- push_counts, updated in the event's own transaction. Both tables lead
-- with room_id, so an event's writes land in one or two pages however many
-- members the room has; push_actions' per-user index dirtied a page per member.
CREATE TABLE push_notified (
	room_id TEXT NOT NULL,
	event_pos BIGINT NOT NULL,
	event_id TEXT NOT NULL,
	thread_id TEXT NOT NULL,
	ts BIGINT NOT NULL,
	-- notified is a JSON array of groups {"u": [user IDs], "h": highlight, "a": actions}.
	notified TEXT NOT NULL,
	PRIMARY KEY (room_id, event_pos, event_id)
) WITHOUT ROWID;
-- push_counts holds a user's unread notification and highlight counts for
-- one room thread ('main' outside threads). A row stays (at zero) once it
-- exists: the rows of a user list the rooms /notifications looks in.
CREATE TABLE push_counts (
	room_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	thread_id TEXT NOT NULL,
	notif_count BIGINT NOT NULL,
	highlight_count BIGINT NOT NULL,
	PRIMARY KEY (room_id, user_id, thread_id)
) WITHOUT ROWID;
CREATE INDEX push_counts_user ON push_counts (user_id);
INSERT INTO push_notified (room_id, event_pos, event_id, thread_id, ts, notified)
	SELECT room_id, event_pos, event_id, thread_id, ts,
		json_group_array(json_object('u', json_array(user_id), 'h', json(CASE WHEN highlight THEN 'true' ELSE 'false' END), 'a', json(actions)))
	FROM push_actions GROUP BY room_id, event_pos, event_id, thread_id, ts;
INSERT INTO push_counts (room_id, user_id, thread_id, notif_count, highlight_count)
	SELECT room_id, user_id, thread_id, SUM(CASE WHEN is_read THEN 0 ELSE 1 END),
		SUM(CASE WHEN highlight AND NOT is_read THEN 1 ELSE 0 END)
	FROM push_actions GROUP BY room_id, user_id, thread_id;
DROP TABLE push_actions;

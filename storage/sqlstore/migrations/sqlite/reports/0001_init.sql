-- event_reports holds reports of events, rooms and users (POST /rooms/{id}/report/{eventId},
-- /rooms/{id}/report, /users/{userId}/report); room_id and event_id are '' when not applicable.
CREATE TABLE event_reports (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	received_ts BIGINT NOT NULL,
	kind TEXT NOT NULL,
	room_id TEXT NOT NULL DEFAULT '',
	event_id TEXT NOT NULL DEFAULT '',
	target_user_id TEXT NOT NULL DEFAULT '',
	user_id TEXT NOT NULL,
	reason TEXT,
	score BIGINT
);
CREATE INDEX event_reports_room ON event_reports (room_id);

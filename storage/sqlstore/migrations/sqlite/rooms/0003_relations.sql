-- relations indexes content.m.relates_to of accepted events (threads, edits,
-- references, annotations). A redaction removes the redacted event's row.
CREATE TABLE relations (
	event_id TEXT PRIMARY KEY,
	relates_to TEXT NOT NULL,
	rel_type TEXT NOT NULL,
	room_id TEXT NOT NULL,
	sender TEXT NOT NULL,
	type TEXT NOT NULL,
	stream_pos BIGINT NOT NULL
);
CREATE INDEX relations_parent ON relations (relates_to, stream_pos);
CREATE INDEX relations_room_type ON relations (room_id, rel_type, stream_pos);

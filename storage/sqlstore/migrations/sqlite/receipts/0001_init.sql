-- receipts keeps the latest receipt of each type per (room, user, thread);
-- thread_id is '' for unthreaded receipts.
CREATE TABLE receipts (
	room_id TEXT NOT NULL,
	receipt_type TEXT NOT NULL,
	user_id TEXT NOT NULL,
	thread_id TEXT NOT NULL,
	event_id TEXT NOT NULL,
	ts BIGINT NOT NULL,
	stream_pos BIGINT NOT NULL,
	PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_pos ON receipts (stream_pos);
CREATE INDEX receipts_room_pos ON receipts (room_id, stream_pos);

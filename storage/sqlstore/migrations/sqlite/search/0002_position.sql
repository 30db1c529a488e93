-- search_position is the stream position up to which events are indexed
-- (SQLite indexes after the fact, off the send path: its single writer
-- commits stream positions in order, so nothing is skipped).
CREATE TABLE search_position (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	stream_pos BIGINT NOT NULL
);
INSERT INTO search_position (id, stream_pos) VALUES (1, 0);

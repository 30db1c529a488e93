-- search_docs holds the searchable text of room events (content.body of
-- m.room.message, content.name of m.room.name, content.topic of m.room.topic),
-- one row per event, keyed by the event's stream position. The FTS5 index
-- over value (search_fts) is created at start-up when SQLite has FTS5
-- (build tag sqlite_fts5); without it search falls back to LIKE matching.
CREATE TABLE search_docs (
	stream_pos INTEGER PRIMARY KEY,
	event_id TEXT NOT NULL UNIQUE,
	room_id TEXT NOT NULL,
	sender TEXT NOT NULL,
	key TEXT NOT NULL,
	value TEXT NOT NULL,
	origin_ts BIGINT NOT NULL
);
CREATE INDEX search_docs_room ON search_docs (room_id, stream_pos);

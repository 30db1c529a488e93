-- search_docs holds the searchable text of room events (content.body of
-- m.room.message, content.name of m.room.name, content.topic of m.room.topic),
-- one row per event, keyed by the event's stream position.
CREATE TABLE search_docs (
	stream_pos BIGINT PRIMARY KEY,
	event_id TEXT NOT NULL UNIQUE,
	room_id TEXT NOT NULL,
	sender TEXT NOT NULL,
	key TEXT NOT NULL,
	value TEXT NOT NULL,
	origin_ts BIGINT NOT NULL,
	vec tsvector GENERATED ALWAYS AS (to_tsvector('english', value)) STORED
);
CREATE INDEX search_docs_room ON search_docs (room_id, stream_pos);
CREATE INDEX search_docs_vec ON search_docs USING GIN (vec);

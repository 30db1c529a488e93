-- search_position: used on SQLite only (PostgreSQL indexes events in the
-- transaction that stores them, as concurrent writers may commit stream
-- positions out of order); kept so both dialects have the same schema.
CREATE TABLE search_position (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	stream_pos BIGINT NOT NULL
);
INSERT INTO search_position (id, stream_pos) VALUES (1, 0);

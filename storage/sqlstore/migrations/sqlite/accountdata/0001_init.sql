-- account_data keeps one row per (user, room, type); room_id is '' for global
-- account data. stream_pos is the account_data stream position of the last write.
CREATE TABLE account_data (
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	type TEXT NOT NULL,
	content TEXT NOT NULL,
	stream_pos BIGINT NOT NULL,
	PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_user_pos ON account_data (user_id, stream_pos);

-- server_notice_rooms maps a local user to their server notices room.
CREATE TABLE server_notice_rooms (
	user_id TEXT PRIMARY KEY,
	room_id TEXT NOT NULL
);

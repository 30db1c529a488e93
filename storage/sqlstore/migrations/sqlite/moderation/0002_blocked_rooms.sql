-- blocked_rooms lists rooms local users may not join or send to.
CREATE TABLE blocked_rooms (
	room_id TEXT PRIMARY KEY,
	blocked_by TEXT NOT NULL
);

-- Speeds up "has this user sent anything in this room between two positions" (lazy-loaded members in /sync).
CREATE INDEX events_room_sender ON events (room_id, sender, stream_pos);

-- Sliding sync orders rooms by their newest event of a few types (bump stamp).
CREATE INDEX events_room_type_pos ON events (room_id, type, stream_pos);

-- Index the relations of events stored before this migration.
INSERT INTO relations (event_id, relates_to, rel_type, room_id, sender, type, stream_pos)
SELECT event_id, pdu::json->'content'->'m.relates_to'->>'event_id', pdu::json->'content'->'m.relates_to'->>'rel_type',
	room_id, sender, type, stream_pos
FROM events
WHERE pdu LIKE '%m.relates_to%' AND NOT rejected AND NOT outlier AND NOT soft_failed AND NOT redacted
	AND json_typeof(pdu::json->'content'->'m.relates_to'->'event_id') = 'string'
	AND json_typeof(pdu::json->'content'->'m.relates_to'->'rel_type') = 'string'
	AND pdu::json->'content'->'m.relates_to'->>'event_id' <> '' AND pdu::json->'content'->'m.relates_to'->>'rel_type' <> ''
ON CONFLICT DO NOTHING;

-- Index the relations of events stored before this migration.
INSERT INTO relations (event_id, relates_to, rel_type, room_id, sender, type, stream_pos)
SELECT event_id, json_extract(pdu, '$.content."m.relates_to".event_id'), json_extract(pdu, '$.content."m.relates_to".rel_type'),
	room_id, sender, type, stream_pos
FROM events
WHERE pdu LIKE '%m.relates_to%' AND NOT rejected AND NOT outlier AND NOT soft_failed AND NOT redacted AND json_valid(pdu)
	AND json_type(pdu, '$.content."m.relates_to".event_id') = 'text' AND json_type(pdu, '$.content."m.relates_to".rel_type') = 'text'
	AND json_extract(pdu, '$.content."m.relates_to".event_id') <> '' AND json_extract(pdu, '$.content."m.relates_to".rel_type') <> ''
ON CONFLICT DO NOTHING;

-- compliance_holds lists the rooms and users under a compliance (legal) hold.
CREATE TABLE compliance_holds (
	kind TEXT NOT NULL, -- 'room' or 'user'
	target TEXT NOT NULL,
	created_ts BIGINT NOT NULL,
	created_by TEXT NOT NULL,
	PRIMARY KEY (kind, target)
);
-- held_events keeps the original PDU of events under hold that were
-- redacted or purged, for export; clients only ever see the redacted form.
CREATE TABLE held_events (
	event_id TEXT PRIMARY KEY,
	room_id TEXT NOT NULL,
	sender TEXT NOT NULL,
	stream_pos BIGINT NOT NULL,
	pdu TEXT NOT NULL,
	held_ts BIGINT NOT NULL
);
CREATE INDEX held_events_room ON held_events (room_id, stream_pos);

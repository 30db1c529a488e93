CREATE TABLE rooms (
	room_id TEXT PRIMARY KEY,
	room_version TEXT NOT NULL,
	creator TEXT NOT NULL,
	created_ts BIGINT NOT NULL,
	-- current_group is the state group of the room's current state.
	current_group BIGINT NOT NULL DEFAULT 0,
	is_public BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE events (
	stream_pos INTEGER PRIMARY KEY AUTOINCREMENT,
	event_id TEXT NOT NULL UNIQUE,
	room_id TEXT NOT NULL,
	type TEXT NOT NULL,
	state_key TEXT,
	sender TEXT NOT NULL,
	depth BIGINT NOT NULL,
	origin_ts BIGINT NOT NULL,
	membership TEXT,
	pdu TEXT NOT NULL,
	unsigned TEXT NOT NULL DEFAULT '',
	txn_id TEXT NOT NULL DEFAULT '',
	device_id TEXT NOT NULL DEFAULT '',
	rejected BOOLEAN NOT NULL DEFAULT FALSE,
	outlier BOOLEAN NOT NULL DEFAULT FALSE,
	soft_failed BOOLEAN NOT NULL DEFAULT FALSE,
	redacted BOOLEAN NOT NULL DEFAULT FALSE,
	state_before BIGINT NOT NULL DEFAULT 0,
	state_after BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX events_room_pos ON events (room_id, stream_pos);
CREATE INDEX events_room_state ON events (room_id, type, state_key, stream_pos) WHERE state_key IS NOT NULL;
CREATE TABLE event_edges (
	event_id TEXT NOT NULL,
	prev_event_id TEXT NOT NULL,
	PRIMARY KEY (event_id, prev_event_id)
);
CREATE INDEX event_edges_prev ON event_edges (prev_event_id);
CREATE TABLE forward_extremities (
	room_id TEXT NOT NULL,
	event_id TEXT NOT NULL,
	PRIMARY KEY (room_id, event_id)
);
CREATE TABLE state_groups (
	group_id INTEGER PRIMARY KEY AUTOINCREMENT,
	room_id TEXT NOT NULL,
	prev_group BIGINT,
	chain_len INTEGER NOT NULL
);
CREATE TABLE state_group_entries (
	group_id BIGINT NOT NULL,
	type TEXT NOT NULL,
	state_key TEXT NOT NULL,
	event_id TEXT NOT NULL,
	PRIMARY KEY (group_id, type, state_key)
);
CREATE TABLE current_state (
	room_id TEXT NOT NULL,
	type TEXT NOT NULL,
	state_key TEXT NOT NULL,
	event_id TEXT NOT NULL,
	stream_pos BIGINT NOT NULL,
	membership TEXT,
	PRIMARY KEY (room_id, type, state_key)
);
CREATE INDEX current_state_member ON current_state (state_key, membership) WHERE type = 'm.room.member';
CREATE TABLE txn_ids (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	txn_id TEXT NOT NULL,
	event_id TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id, txn_id)
);
CREATE TABLE room_aliases (
	alias TEXT PRIMARY KEY,
	room_id TEXT NOT NULL,
	creator TEXT NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);
CREATE TABLE forgotten_rooms (
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	PRIMARY KEY (user_id, room_id)
);

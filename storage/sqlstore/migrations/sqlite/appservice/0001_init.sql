-- appservice_state is per application service: the stream position up to
-- which room events were looked at (event_cursor), the last transaction ID
-- used, and the lease of the one process sending its transactions.
CREATE TABLE appservice_state (
	as_id TEXT PRIMARY KEY,
	event_cursor BIGINT NOT NULL,
	last_txn_id BIGINT NOT NULL DEFAULT 0,
	lease_owner TEXT NOT NULL DEFAULT '',
	lease_until BIGINT NOT NULL DEFAULT 0
);
-- appservice_queue holds what is still to be delivered to an application
-- service: room events (by ID, formatted when sent) and ephemeral events.
-- txn_id is set once the item is part of a transaction, which keeps its ID
-- and items until the service accepted it; the rows are then deleted.
CREATE TABLE appservice_queue (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	as_id TEXT NOT NULL,
	txn_id BIGINT,
	kind TEXT NOT NULL,
	event_id TEXT NOT NULL DEFAULT '',
	payload TEXT NOT NULL DEFAULT ''
);
CREATE INDEX appservice_queue_as ON appservice_queue (as_id, txn_id, id);
-- appservice_room_directory holds the rooms application services published
-- in their networks' room directories (PUT /directory/list/appservice/...).
CREATE TABLE appservice_room_directory (
	as_id TEXT NOT NULL,
	network_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	PRIMARY KEY (as_id, network_id, room_id)
);

-- A transaction ID is scoped to a device and an endpoint (the request path:
-- room, event type or redaction target), not only to the device.
CREATE TABLE txn_ids_scoped (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	scope TEXT NOT NULL DEFAULT '',
	txn_id TEXT NOT NULL,
	event_id TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id, scope, txn_id)
);
INSERT INTO txn_ids_scoped (user_id, device_id, scope, txn_id, event_id)
SELECT user_id, device_id, '', txn_id, event_id FROM txn_ids;
DROP TABLE txn_ids;
ALTER TABLE txn_ids_scoped RENAME TO txn_ids;

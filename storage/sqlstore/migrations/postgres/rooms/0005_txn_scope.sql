-- A transaction ID is scoped to a device and an endpoint (the request path:
-- room, event type or redaction target), not only to the device.
ALTER TABLE txn_ids ADD COLUMN scope TEXT NOT NULL DEFAULT '';
ALTER TABLE txn_ids DROP CONSTRAINT txn_ids_pkey;
ALTER TABLE txn_ids ADD PRIMARY KEY (user_id, device_id, scope, txn_id);

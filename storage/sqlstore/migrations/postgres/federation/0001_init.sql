-- server_key_responses caches the latest verified /_matrix/key/v2/server
-- response of each remote server, as received (notaries serve it verbatim).
CREATE TABLE server_key_responses (
	server_name TEXT PRIMARY KEY,
	response TEXT NOT NULL,
	valid_until_ts BIGINT NOT NULL,
	fetched_ts BIGINT NOT NULL
);
-- server_keys keeps every verify key ever seen; expired_ts is 0 while the key
-- is current, else the time the server stopped using it.
CREATE TABLE server_keys (
	server_name TEXT NOT NULL,
	key_id TEXT NOT NULL,
	public_key TEXT NOT NULL,
	valid_until_ts BIGINT NOT NULL,
	expired_ts BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (server_name, key_id)
);
-- server_key_errors remembers failed key fetches for backoff.
CREATE TABLE server_key_errors (
	server_name TEXT PRIMARY KEY,
	failures INTEGER NOT NULL,
	last_ts BIGINT NOT NULL,
	message TEXT NOT NULL
);
-- federation_txns makes inbound /send idempotent per (origin, txn_id).
CREATE TABLE federation_txns (
	origin TEXT NOT NULL,
	txn_id TEXT NOT NULL,
	response TEXT NOT NULL,
	received_ts BIGINT NOT NULL,
	PRIMARY KEY (origin, txn_id)
);
-- outbound_queue holds PDUs and EDUs not yet delivered to a destination.
CREATE TABLE outbound_queue (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	destination TEXT NOT NULL,
	kind TEXT NOT NULL,
	payload TEXT NOT NULL,
	created_ts BIGINT NOT NULL
);
CREATE INDEX outbound_queue_dest ON outbound_queue (destination, kind, id);

-- End-to-end encryption: device keys, one-time and fallback keys, cross-signing
-- keys and signatures, device-list and to-device streams, key backup.

-- Stream positions of device_list and to_device live in stream_positions.

CREATE TABLE device_keys (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	key_json TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id)
);
CREATE TABLE one_time_keys (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	algorithm TEXT NOT NULL,
	key_id TEXT NOT NULL,
	key_json TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id, algorithm, key_id)
);
CREATE TABLE fallback_keys (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	algorithm TEXT NOT NULL,
	key_id TEXT NOT NULL,
	key_json TEXT NOT NULL,
	used BOOLEAN NOT NULL DEFAULT FALSE,
	PRIMARY KEY (user_id, device_id, algorithm)
);
CREATE TABLE cross_signing_keys (
	user_id TEXT NOT NULL,
	key_type TEXT NOT NULL,
	key_json TEXT NOT NULL,
	PRIMARY KEY (user_id, key_type)
);
-- key_signatures are signatures uploaded with /keys/signatures/upload on
-- another key (a device ID or a cross-signing public key).
CREATE TABLE key_signatures (
	target_user_id TEXT NOT NULL,
	target_key_id TEXT NOT NULL,
	signer_user_id TEXT NOT NULL,
	signer_key_id TEXT NOT NULL,
	signature TEXT NOT NULL,
	PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
);
-- device_list_changes: user_id's devices or keys changed. observer_id empty
-- means "everyone sharing a room with user_id"; otherwise only observer_id is
-- told, with kind 'changed' or 'left'.
CREATE TABLE device_list_changes (
	pos BIGINT NOT NULL,
	user_id TEXT NOT NULL,
	observer_id TEXT NOT NULL DEFAULT '',
	kind TEXT NOT NULL DEFAULT 'changed'
);
CREATE INDEX device_list_changes_pos ON device_list_changes (pos);
CREATE TABLE to_device_messages (
	pos BIGINT NOT NULL,
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	sender TEXT NOT NULL,
	type TEXT NOT NULL,
	content TEXT NOT NULL
);
CREATE INDEX to_device_messages_target ON to_device_messages (user_id, device_id, pos);
CREATE TABLE to_device_txns (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	txn_id TEXT NOT NULL,
	created_ts BIGINT NOT NULL,
	PRIMARY KEY (user_id, device_id, txn_id)
);
CREATE TABLE backup_versions (
	user_id TEXT NOT NULL,
	version BIGINT NOT NULL,
	algorithm TEXT NOT NULL,
	auth_data TEXT NOT NULL,
	etag BIGINT NOT NULL DEFAULT 0,
	deleted BOOLEAN NOT NULL DEFAULT FALSE,
	PRIMARY KEY (user_id, version)
);
CREATE TABLE backup_keys (
	user_id TEXT NOT NULL,
	version BIGINT NOT NULL,
	room_id TEXT NOT NULL,
	session_id TEXT NOT NULL,
	first_message_index BIGINT NOT NULL,
	forwarded_count BIGINT NOT NULL,
	is_verified BOOLEAN NOT NULL,
	session_data TEXT NOT NULL,
	PRIMARY KEY (user_id, version, room_id, session_id)
);
-- A user's dehydrated device (MSC3814); the device itself is a row of devices
-- without access tokens.
CREATE TABLE dehydrated_devices (
	user_id TEXT PRIMARY KEY,
	device_id TEXT NOT NULL,
	device_data TEXT NOT NULL
);

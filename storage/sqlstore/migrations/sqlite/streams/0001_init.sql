-- stream_positions holds the latest position of each persistent sync stream
-- (account_data, receipt, notif). Writers bump a row inside their transaction,
-- which also serialises them so positions become visible in order.
CREATE TABLE stream_positions (
	name TEXT PRIMARY KEY,
	pos BIGINT NOT NULL
);

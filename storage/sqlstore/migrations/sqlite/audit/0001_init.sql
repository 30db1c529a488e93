-- audit_log is append-only: Parley only ever inserts into it and reads it.
CREATE TABLE audit_log (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	ts BIGINT NOT NULL,
	action TEXT NOT NULL,
	-- user_id is the acting user ("" for the server itself), target what it acted on.
	user_id TEXT NOT NULL,
	target TEXT NOT NULL DEFAULT '',
	device_id TEXT NOT NULL DEFAULT '',
	ip TEXT NOT NULL DEFAULT '',
	-- details is a JSON object.
	details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_user ON audit_log (user_id, ts);
CREATE INDEX audit_log_action ON audit_log (action, ts);
CREATE INDEX audit_log_ts ON audit_log (ts);
-- Enforce append-only in the database too.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

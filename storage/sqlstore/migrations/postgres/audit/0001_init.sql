-- audit_log is append-only: Parley only ever inserts into it and reads it.
CREATE TABLE audit_log (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
CREATE FUNCTION audit_log_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_immutable();

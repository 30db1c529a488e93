-- The latest device-list change of a user (prev_id of m.device_list_update).
CREATE INDEX device_list_changes_user ON device_list_changes (user_id, pos);

-- One-time keys are claimed in the order they were uploaded (MSC4225): each
-- upload gets the next sequence number of its device; keys stored before this
-- migration share 0 and go first, by key ID as before.
ALTER TABLE one_time_keys ADD COLUMN upload_seq BIGINT NOT NULL DEFAULT 0;

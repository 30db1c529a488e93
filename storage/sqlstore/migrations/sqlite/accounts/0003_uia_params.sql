-- Registration sessions remember the request's parameters (with the password
-- already hashed) and, once complete, the user they registered, so that a
-- retry with the same session is answered for the same user.
ALTER TABLE uia_sessions ADD COLUMN params TEXT NOT NULL DEFAULT '';
ALTER TABLE uia_sessions ADD COLUMN result_user_id TEXT NOT NULL DEFAULT '';

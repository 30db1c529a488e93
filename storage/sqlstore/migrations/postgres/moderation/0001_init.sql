-- user_restrictions holds admin restrictions on local users: locked (every
-- request fails with M_USER_LOCKED), suspended (no sending, joining,
-- inviting or room creation: M_USER_SUSPENDED) and shadow-banned (sends
-- appear to succeed but nothing is sent).
CREATE TABLE user_restrictions (
	user_id TEXT PRIMARY KEY,
	locked BOOLEAN NOT NULL DEFAULT FALSE,
	suspended BOOLEAN NOT NULL DEFAULT FALSE,
	shadow_banned BOOLEAN NOT NULL DEFAULT FALSE
);

-- The unique key of push_actions leads with event_id instead of user_id:
-- one event's rows (one per notified user) then sit together in the index,
-- so storing them dirties one index page instead of one per user, and purges
-- by event_id use the index.
ALTER TABLE push_actions DROP CONSTRAINT IF EXISTS push_actions_user_id_event_id_key;
ALTER TABLE push_actions ADD CONSTRAINT push_actions_event_id_user_id_key UNIQUE (event_id, user_id);

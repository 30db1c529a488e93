package sqlstore_test

import (
	"context"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/storage/sqlstore"
)

// TestPushCountsMigration checks that 0003_push_counts carries per-user
// push_actions rows over: unread counts from unread rows only, and every
// notification still listed (grouped per event) by /notifications.
func TestPushCountsMigration(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		for _, q := range []string{
			`DROP TABLE push_notified`,
			`DROP TABLE push_counts`,
			`CREATE TABLE push_actions (user_id TEXT NOT NULL, room_id TEXT NOT NULL, event_id TEXT NOT NULL, thread_id TEXT NOT NULL,
				event_pos BIGINT NOT NULL, ts BIGINT NOT NULL, highlight BOOLEAN NOT NULL, actions TEXT NOT NULL, is_read BOOLEAN NOT NULL)`,
			`INSERT INTO push_actions VALUES
				('@a:x', '!r:x', '$1', 'main', 1, 100, FALSE, '["notify"]', TRUE),
				('@b:x', '!r:x', '$1', 'main', 1, 100, TRUE, '["notify",{"set_tweak":"highlight"}]', FALSE),
				('@a:x', '!r:x', '$2', '$1', 2, 200, TRUE, '["notify",{"set_tweak":"highlight"}]', FALSE),
				('@a:x', '!s:x', '$3', 'main', 3, 300, FALSE, '["notify"]', FALSE)`,
		} {
			if err := s.ExecForTest(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if err := s.RerunMigrationForTest(ctx, "pushrules", "0003_push_counts.sql"); err != nil {
			t.Fatal(err)
		}
		cs, err := s.UnreadCounts(ctx, "@a:x", []id.RoomID{"!r:x", "!s:x"})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][2]int{}
		for _, c := range cs {
			got[string(c.RoomID)+" "+c.ThreadID] = [2]int{c.Notifications, c.Highlights}
		}
		if len(got) != 2 || got["!r:x $1"] != [2]int{1, 1} || got["!s:x main"] != [2]int{1, 0} {
			t.Fatalf("counts of @a:x: %v", got)
		}
		ns, err := s.Notifications(ctx, "@a:x", 0, 10, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(ns) != 3 || ns[0].EventID != "$3" || ns[1].EventID != "$2" || ns[2].EventID != "$1" || !ns[1].Highlight || ns[2].Highlight {
			t.Fatalf("notifications of @a:x: %+v", ns)
		}
		ns, err = s.Notifications(ctx, "@b:x", 0, 10, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(ns) != 1 || ns[0].EventID != "$1" || string(ns[0].Actions) != `["notify",{"set_tweak":"highlight"}]` {
			t.Fatalf("notifications of @b:x: %+v", ns)
		}
	})
}

package adminapi_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"parley/internal/testserver"
	"parley/storage/sqlstore"
)

// roomRows counts, in every table with a room_id column, the rows of room,
// and the rows of tables keyed by the room's event IDs, stream positions or
// state groups (given), by table name.
func roomRows(t *testing.T, srv *testserver.Server, room string, events []string, positions, groups []int64) map[string]int {
	t.Helper()
	ctx := context.Background()
	db := srv.HS.Store.(*sqlstore.Store).DB()
	q := `SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND p.name = 'room_id'`
	if db.Dialect == sqlstore.Postgres {
		q = `SELECT table_name FROM information_schema.columns WHERE column_name = 'room_id' AND table_schema = current_schema()`
	}
	tables := queryStrings(t, db.Reader(), q)
	if len(tables) < 10 {
		t.Fatalf("only %d tables with room_id: %v", len(tables), tables)
	}
	out := map[string]int{}
	count := func(name, query string, args ...any) {
		var n int
		if err := db.Reader().QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n > 0 {
			out[name] += n
		}
	}
	for _, table := range tables {
		count(table, `SELECT COUNT(*) FROM `+table+` WHERE room_id = $1`, room)
	}
	in := func(vals []string) string { return "('" + strings.Join(vals, "','") + "')" }
	var ints []string
	for _, p := range positions {
		ints = append(ints, fmt.Sprint(p))
	}
	var gs []string
	for _, g := range groups {
		gs = append(gs, fmt.Sprint(g))
	}
	count("event_edges", `SELECT COUNT(*) FROM event_edges WHERE event_id IN `+in(events)+` OR prev_event_id IN `+in(events))
	count("txn_ids", `SELECT COUNT(*) FROM txn_ids WHERE event_id IN `+in(events))
	count("state_group_entries", `SELECT COUNT(*) FROM state_group_entries WHERE group_id IN (`+strings.Join(gs, ",")+`)`)
	if db.Dialect == sqlstore.SQLite && len(queryStrings(t, db.Reader(), `SELECT name FROM sqlite_master WHERE name = 'search_fts'`)) > 0 {
		count("search_fts", `SELECT COUNT(*) FROM search_fts WHERE rowid IN (`+strings.Join(ints, ",")+`)`)
	}
	return out
}

func queryStrings(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func queryInts(t *testing.T, db *sql.DB, q string, args ...any) []int64 {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func waitDeleted(t *testing.T, admin *testserver.Client, deleteID string) map[string]any {
	t.Helper()
	var status map[string]any
	for i := 0; i < 250; i++ {
		status = admin.MustDo(t, http.MethodGet, "/_synapse/admin/v2/rooms/delete_status/"+deleteID, nil).JSON
		if status["status"] == "complete" || status["status"] == "failed" {
			return status
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("delete still running: %v", status)
	return nil
}

// TestPurgeRoom fills a room with everything a room leaves behind (state,
// memberships, aliases, a directory entry, receipts, notifications,
// relations, search index rows, tags and room account data, key backups,
// reports, forgotten-room marks), deletes it with purge, and checks that no
// table keeps a row of it but the block.
func TestPurgeRoom(t *testing.T) {
	srv := testserver.New(t)
	admin := srv.Register(t, "admin")
	makeAdmin(t, srv, admin)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	dave := srv.Register(t, "dave")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat", "visibility": "public", "room_alias_name": "purged",
		"name": "Purged room", "topic": "searchable topic"})
	other := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Kept room"})
	send(t, alice, other, "kept message")
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	carol.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/invite", room), map[string]any{"user_id": dave.UserID})
	msg := send(t, alice, room, "needle in the purged room")
	send(t, bob, room, "reply from bob")
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.reaction/r1", room),
		map[string]any{"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": msg, "key": "👍"}})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", room, msg), map[string]any{})
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("user/%s/rooms/%s/tags/u.work", bob.UserID, room), map[string]any{"order": 0.5})
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("user/%s/rooms/%s/account_data/org.example.note", bob.UserID, room), map[string]any{"x": 1})
	const alg = "m.megolm_backup.v1.curve25519-aes-sha2"
	v := bob.MustDo(t, http.MethodPost, "room_keys/version", map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "a"}}).JSON["version"].(string)
	bob.MustDo(t, http.MethodPut, "room_keys/keys/"+url.PathEscape(room)+"/s1?version="+v, map[string]any{"first_message_index": 0,
		"forwarded_count": 0, "is_verified": false, "session_data": map[string]any{"ciphertext": "c", "ephemeral": "e", "mac": "m"}})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/report/%s", room, msg), map[string]any{"reason": "spam"})
	carol.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/leave", room), map[string]any{})
	carol.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/forget", room), map[string]any{})
	// Searching indexes the events (SQLite indexes after the fact).
	if res := bob.MustDo(t, http.MethodPost, "search", map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "needle"}}}); !strings.Contains(string(res.Body), msg) {
		t.Fatalf("search before purge: %s", res.Body)
	}

	db := srv.HS.Store.(*sqlstore.Store).DB().Reader()
	events := queryStrings(t, db, `SELECT event_id FROM events WHERE room_id = $1`, room)
	positions := queryInts(t, db, `SELECT stream_pos FROM events WHERE room_id = $1`, room)
	groups := queryInts(t, db, `SELECT group_id FROM state_groups WHERE room_id = $1`, room)
	before := roomRows(t, srv, room, events, positions, groups)
	for _, table := range []string{"rooms", "events", "current_state", "state_groups", "state_group_entries", "forward_extremities", "event_edges",
		"room_aliases", "receipts", "push_notified", "push_counts", "relations", "search_docs", "account_data", "backup_keys", "event_reports", "forgotten_rooms", "txn_ids"} {
		if before[table] == 0 {
			t.Errorf("no %s rows before the purge: the test does not exercise it (%v)", table, before)
		}
	}
	otherBefore := roomRows(t, srv, other, nil, nil, []int64{0})

	bobSince := bob.MustDo(t, http.MethodGet, "sync?timeout=0", nil).JSON["next_batch"].(string)
	posBefore, err := srv.HS.Rooms.Position(context.Background()) // the room's events are the newest
	if err != nil {
		t.Fatal(err)
	}
	res := admin.MustDo(t, http.MethodDelete, "/_synapse/admin/v2/rooms/"+url.PathEscape(room), map[string]any{"block": true, "purge": true})
	if status := waitDeleted(t, admin, res.JSON["delete_id"].(string)); status["status"] != "complete" {
		t.Fatalf("delete: %v", status)
	}
	after := roomRows(t, srv, room, events, positions, groups)
	if len(after) != 1 || after["blocked_rooms"] != 1 {
		var left []string
		for table, n := range after {
			left = append(left, fmt.Sprintf("%s=%d", table, n))
		}
		sort.Strings(left)
		t.Fatalf("rows left after the purge (only the block should stay): %v", left)
	}
	// The stream position does not go back with the purged events.
	if pos, err := srv.HS.Rooms.Position(context.Background()); err != nil || pos < posBefore {
		t.Fatalf("stream position went back from %d to %d (%v)", posBefore, pos, err)
	}
	if got := roomRows(t, srv, other, nil, nil, []int64{0}); fmt.Sprint(got) != fmt.Sprint(otherBefore) {
		t.Fatalf("other room touched: %v, was %v", got, otherBefore)
	}

	// Through the API the room is gone everywhere.
	if r := admin.Do(t, http.MethodGet, "/_synapse/admin/v1/rooms/"+url.PathEscape(room), nil); r.Status != http.StatusNotFound {
		t.Fatalf("admin room details after purge: %d %s", r.Status, r.Body)
	}
	if r := alice.Do(t, http.MethodGet, "directory/room/"+url.PathEscape("#purged:hs1.test"), nil); r.Status != http.StatusNotFound {
		t.Fatalf("alias after purge: %d", r.Status)
	}
	if r := alice.MustDo(t, http.MethodGet, "publicRooms", nil); strings.Contains(string(r.Body), room) {
		t.Fatalf("public directory lists the purged room: %s", r.Body)
	}
	if r := bob.MustDo(t, http.MethodPost, "search", map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "needle"}}}); strings.Contains(string(r.Body), msg) {
		t.Fatalf("search finds purged event: %s", r.Body)
	}
	if r := bob.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{}); r.Status != http.StatusForbidden {
		t.Fatalf("join purged blocked room: %d %s", r.Status, r.Body)
	}
	// Former members still sync, incrementally and from scratch.
	bob.MustDo(t, http.MethodGet, "sync?timeout=0&since="+url.QueryEscape(bobSince), nil)
	for _, c := range []*testserver.Client{alice, bob, carol, dave} {
		c.MustDo(t, http.MethodGet, "sync?timeout=0", nil)
		if r := c.MustDo(t, http.MethodGet, "joined_rooms", nil); strings.Contains(string(r.Body), room) {
			t.Fatalf("%s still in the purged room: %s", c.UserID, r.Body)
		}
	}
	// Unblocked, the room does not exist any more; the other room works.
	admin.MustDo(t, http.MethodPut, "/_synapse/admin/v1/rooms/"+url.PathEscape(room)+"/block", map[string]any{"block": false})
	if r := bob.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{}); r.Status < 400 || r.Status >= 500 {
		t.Fatalf("join purged room: %d %s", r.Status, r.Body)
	}
	// The roomserver's cache of the room went with it: a write finds no room.
	if r := alice.Do(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/after-purge", room),
		map[string]any{"msgtype": "m.text", "body": "into the void"}); r.Status != http.StatusNotFound || r.JSON["errcode"] != "M_NOT_FOUND" {
		t.Fatalf("send into purged room: %d %s", r.Status, r.Body)
	}
	send(t, alice, other, "still works")
}

// TestPurgeRoomUnderHold: purging a room under a compliance hold removes it
// for everyone, but its events stay exportable (marked purged), redacted
// ones with their original content.
func TestPurgeRoomUnderHold(t *testing.T) {
	srv := testserver.New(t)
	admin := srv.Register(t, "admin")
	makeAdmin(t, srv, admin)
	alice := srv.Register(t, "alice")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	r := url.PathEscape(room)
	admin.MustDo(t, http.MethodPut, "/_parley/admin/v1/holds/room/"+r, map[string]any{})
	kept := send(t, alice, room, "evidence")
	secret := send(t, alice, room, "secret evidence")
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/redact/%s/rx", room, secret), map[string]any{})

	res := admin.MustDo(t, http.MethodDelete, "/_synapse/admin/v2/rooms/"+r, map[string]any{})
	if status := waitDeleted(t, admin, res.JSON["delete_id"].(string)); status["status"] != "complete" {
		t.Fatalf("delete: %v", status)
	}
	if r := admin.Do(t, http.MethodGet, "/_synapse/admin/v1/rooms/"+url.PathEscape(room), nil); r.Status != http.StatusNotFound {
		t.Fatalf("room details after purge: %d", r.Status)
	}
	got := map[string]string{}
	for _, rec := range exportLines(t, admin, "room_id="+r) {
		if !rec.Purged {
			t.Fatalf("export after purge has a live event: %+v", rec)
		}
		got[string(rec.EventID)] = string(rec.Content)
	}
	if !strings.Contains(got[kept], `"evidence"`) || !strings.Contains(got[secret], "secret evidence") {
		t.Fatalf("held events not exported after the purge: %v", got)
	}
}

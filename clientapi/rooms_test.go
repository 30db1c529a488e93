package clientapi_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/internal/config"
	"parley/internal/testserver"
)

var txnCounter atomic.Int64

func createRoom(t *testing.T, c *testserver.Client, body map[string]any) string {
	t.Helper()
	res := c.MustDo(t, http.MethodPost, "createRoom", body)
	return res.JSON["room_id"].(string)
}

func sendMsg(t *testing.T, c *testserver.Client, room, text string) string {
	t.Helper()
	res := c.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/%s", room, fmt.Sprint("txn", txnCounter.Add(1))),
		map[string]any{"msgtype": "m.text", "body": text})
	return res.JSON["event_id"].(string)
}

func member(t *testing.T, c *testserver.Client, room, action string, body map[string]any) *testserver.Response {
	t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	return c.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/", room)+action, body)
}

func wantErr(t *testing.T, res *testserver.Response, status int, code string) {
	t.Helper()
	if res.Status != status || res.ErrCode != code {
		t.Fatalf("want %d %s, got %d: %s", status, code, res.Status, res.Body)
	}
}

func membershipOf(t *testing.T, c *testserver.Client, room, user string) string {
	t.Helper()
	res := c.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.member/%s", room, user), nil)
	if res.Status == http.StatusNotFound {
		return ""
	}
	if res.Status != http.StatusOK {
		t.Fatalf("get membership: %d %s", res.Status, res.Body)
	}
	return res.JSON["membership"].(string)
}

func TestCreateRoomAndState(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	room := createRoom(t, alice, map[string]any{
		"preset": "public_chat", "name": "Room", "topic": "Topic", "room_alias_name": "lobby",
		"initial_state":                []map[string]any{{"type": "m.room.encryption", "state_key": "", "content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}},
		"power_level_content_override": map[string]any{"events_default": 5},
		"creation_content":             map[string]any{"m.federate": false},
	})
	res := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state", room), nil)
	var state []map[string]any
	mustUnmarshal(t, res.Body, &state)
	types := map[string]map[string]any{}
	for _, ev := range state {
		types[ev["type"].(string)] = ev
		if ev["room_id"] != room || ev["event_id"] == nil || ev["sender"] != string(alice.UserID) {
			t.Fatalf("bad state event %v", ev)
		}
	}
	for _, ty := range []string{"m.room.create", "m.room.member", "m.room.power_levels", "m.room.join_rules", "m.room.history_visibility", "m.room.name", "m.room.topic", "m.room.canonical_alias", "m.room.encryption"} {
		if types[ty] == nil {
			t.Fatalf("missing %s in %s", ty, res.Body)
		}
	}
	c := types["m.room.create"]["content"].(map[string]any)
	if c["room_version"] != string(srv.Cfg.Rooms.DefaultVersion) || c["m.federate"] != false {
		t.Fatalf("create content %v", c)
	}
	if types["m.room.guest_access"] != nil {
		t.Fatalf("public_chat sent m.room.guest_access: %v", types["m.room.guest_access"])
	}
	if types["m.room.join_rules"]["content"].(map[string]any)["join_rule"] != "public" {
		t.Fatalf("public_chat join rule: %v", types["m.room.join_rules"])
	}
	pl := types["m.room.power_levels"]["content"].(map[string]any)
	if pl["events_default"] != 5.0 || pl["users"].(map[string]any)[string(alice.UserID)] != 100.0 {
		t.Fatalf("power levels %v", pl)
	}
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.name/", room), nil)
	if res.JSON["name"] != "Room" {
		t.Fatalf("name: %s", res.Body)
	}
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.name", room)+"?format=event", nil)
	if res.JSON["type"] != "m.room.name" || res.JSON["content"].(map[string]any)["name"] != "Room" {
		t.Fatalf("format=event: %s", res.Body)
	}
	wantErr(t, alice.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.nothing/", room), nil), 404, "M_NOT_FOUND")

	// The alias resolves, and a second room cannot take it.
	res = srv.Anon().MustDo(t, http.MethodGet, "directory/room/%23lobby:hs1.test", nil)
	if res.JSON["room_id"] != room {
		t.Fatalf("alias: %s", res.Body)
	}
	wantErr(t, alice.Do(t, http.MethodPost, "createRoom", map[string]any{"room_alias_name": "lobby"}), 400, "M_ROOM_IN_USE")

	// Errors.
	wantErr(t, alice.Do(t, http.MethodPost, "createRoom", map[string]any{"room_version": "999"}), 400, "M_UNSUPPORTED_ROOM_VERSION")
	wantErr(t, alice.Do(t, http.MethodPost, "createRoom", "{"), 400, "M_NOT_JSON")
	wantErr(t, alice.Do(t, http.MethodPost, "createRoom", "[]"), 400, "M_BAD_JSON")
	wantErr(t, alice.Do(t, http.MethodPost, "createRoom", map[string]any{"preset": "nope"}), 400, "M_INVALID_PARAM")
	wantErr(t, alice.Do(t, http.MethodPost, "createRoom", map[string]any{"invite": []string{"notauser"}}), 400, "M_INVALID_PARAM")
	wantErr(t, alice.Do(t, http.MethodPost, "createRoom", map[string]any{"room_alias_name": "a:b"}), 400, "M_INVALID_PARAM")
	// A power level override that leaves the creator unable to name the room.
	wantErr(t, alice.Do(t, http.MethodPost, "createRoom", map[string]any{"name": "x", "power_level_content_override": map[string]any{"users": map[string]any{}, "state_default": 50, "events": map[string]any{}}}), 400, "M_INVALID_ROOM_STATE")
	wantErr(t, srv.Anon().Do(t, http.MethodPost, "createRoom", map[string]any{}), 401, "M_MISSING_TOKEN")

	// Capabilities list the versions.
	res = alice.MustDo(t, http.MethodGet, "capabilities", nil)
	rv := res.JSON["capabilities"].(map[string]any)["m.room_versions"].(map[string]any)
	if rv["default"] != string(srv.Cfg.Rooms.DefaultVersion) || rv["available"].(map[string]any)["12"] != "stable" {
		t.Fatalf("capabilities: %s", res.Body)
	}
}

func TestRoomVersions(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	for _, v := range []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"} {
		t.Run("v"+v, func(t *testing.T) {
			room := createRoom(t, alice, map[string]any{"room_version": v, "preset": "public_chat", "name": "n"})
			member(t, bob, room, "join", nil)
			ev := sendMsg(t, bob, room, "hi")
			res := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, ev), nil)
			if res.JSON["content"].(map[string]any)["body"] != "hi" {
				t.Fatalf("event: %s", res.Body)
			}
			red := alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/redact/%s/r%s", room, ev, v), map[string]any{"reason": "spam"})
			res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, ev), nil)
			if len(res.JSON["content"].(map[string]any)) != 0 {
				t.Fatalf("not redacted: %s", res.Body)
			}
			if rb := res.JSON["unsigned"].(map[string]any)["redacted_because"].(map[string]any); rb["event_id"] != red.JSON["event_id"] {
				t.Fatalf("redacted_because: %s", res.Body)
			}
		})
	}
}

func TestSendAndIdempotency(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})

	path := testserver.Sprintf("rooms/%s/send/m.room.message/abc", room)
	e1 := alice.MustDo(t, http.MethodPut, path, map[string]any{"body": "x", "msgtype": "m.text"}).JSON["event_id"]
	e2 := alice.MustDo(t, http.MethodPut, path, map[string]any{"body": "x", "msgtype": "m.text"}).JSON["event_id"]
	if e1 != e2 {
		t.Fatalf("same txn gave %v and %v", e1, e2)
	}
	// The sending device sees its transaction ID; others do not.
	res := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, e1), nil)
	if res.JSON["unsigned"].(map[string]any)["transaction_id"] != "abc" {
		t.Fatalf("transaction_id missing: %s", res.Body)
	}
	member(t, bob, room, "join", nil)
	res = bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, e1), nil)
	if _, ok := res.JSON["unsigned"].(map[string]any)["transaction_id"]; ok {
		t.Fatalf("transaction_id leaked: %s", res.Body)
	}
	// Same txn ID from another user is a different event.
	e3 := bob.MustDo(t, http.MethodPut, path, map[string]any{"body": "y"}).JSON["event_id"]
	if e3 == e1 {
		t.Fatal("txn IDs are not per device")
	}
	// The repeat wrote nothing: one "x" in the room, and the room takes more.
	alice.MustDo(t, http.MethodPut, path+"-next", map[string]any{"body": "next", "msgtype": "m.text"})
	msgs := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages?dir=b&limit=50", room), nil)
	xs := 0
	for _, ev := range msgs.JSON["chunk"].([]any) {
		if c, _ := ev.(map[string]any)["content"].(map[string]any); c["body"] == "x" {
			xs++
		}
	}
	if xs != 1 {
		t.Fatalf("%d events with body x after a repeated transaction: %s", xs, msgs.Body)
	}
	// A retry the room would now refuse still answers the first event.
	member(t, bob, room, "leave", nil)
	if e4 := bob.MustDo(t, http.MethodPut, path, map[string]any{"body": "y"}).JSON["event_id"]; e4 != e3 {
		t.Fatalf("retry after leaving gave %v, want %v", e4, e3)
	}

	wantErr(t, alice.Do(t, http.MethodPut, path+"2", "{bad"), 400, "M_NOT_JSON")
	wantErr(t, alice.Do(t, http.MethodPut, path+"3", `"str"`), 400, "M_BAD_JSON")
	wantErr(t, alice.Do(t, http.MethodPut, "rooms/%21nope:hs1.test/send/m.room.message/1", map[string]any{}), 404, "M_NOT_FOUND")
	wantErr(t, alice.Do(t, http.MethodPut, "rooms/notaroom/send/m.room.message/1", map[string]any{}), 400, "M_INVALID_PARAM")
	big := make([]byte, 70000)
	for i := range big {
		big[i] = 'a'
	}
	wantErr(t, alice.Do(t, http.MethodPut, path+"4", map[string]any{"body": string(big)}), 413, "M_TOO_LARGE")

	carol := srv.Register(t, "carol")
	wantErr(t, carol.Do(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/1", room), map[string]any{"body": "x"}), 403, "M_FORBIDDEN")
}

func TestMembershipTransitions(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := createRoom(t, alice, map[string]any{"preset": "private_chat"})
	a, b := string(alice.UserID), string(bob.UserID)

	// Private room: joining without an invite is forbidden.
	wantErr(t, member(t, bob, room, "join", nil), 403, "M_FORBIDDEN")
	wantErr(t, bob.Do(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{}), 403, "M_FORBIDDEN")
	// Bob cannot invite: he is not in the room.
	wantErr(t, member(t, bob, room, "invite", map[string]any{"user_id": string(carol.UserID)}), 403, "M_FORBIDDEN")
	wantErr(t, member(t, alice, room, "invite", map[string]any{}), 400, "M_MISSING_PARAM")

	// invite → join
	if res := member(t, alice, room, "invite", map[string]any{"user_id": b, "reason": "welcome"}); res.Status != 200 {
		t.Fatalf("invite: %s", res.Body)
	}
	if m := membershipOf(t, alice, room, b); m != "invite" {
		t.Fatalf("after invite: %q", m)
	}
	res := bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	if res.JSON["room_id"] != room {
		t.Fatalf("join: %s", res.Body)
	}
	if m := membershipOf(t, alice, room, b); m != "join" {
		t.Fatalf("after join: %q", m)
	}
	jr := bob.MustDo(t, http.MethodGet, "joined_rooms", nil)
	if rooms := jr.JSON["joined_rooms"].([]any); len(rooms) != 1 || rooms[0] != room {
		t.Fatalf("joined_rooms: %s", jr.Body)
	}
	jm := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/joined_members", room), nil)
	if joined := jm.JSON["joined"].(map[string]any); len(joined) != 2 || joined[b] == nil {
		t.Fatalf("joined_members: %s", jm.Body)
	}

	// Bob (PL 0) may not kick or set state.
	wantErr(t, member(t, bob, room, "kick", map[string]any{"user_id": a}), 403, "M_FORBIDDEN")
	wantErr(t, bob.Do(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.name/", room), map[string]any{"name": "x"}), 403, "M_FORBIDDEN")

	// join → leave → rejoin needs a new invite
	if res := member(t, bob, room, "leave", nil); res.Status != 200 {
		t.Fatalf("leave: %s", res.Body)
	}
	if m := membershipOf(t, alice, room, b); m != "leave" {
		t.Fatalf("after leave: %q", m)
	}
	wantErr(t, member(t, bob, room, "join", nil), 403, "M_FORBIDDEN")
	// A left member still reads state as of their leave.
	bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state", room), nil)
	// forget: only after leaving
	wantErr(t, member(t, alice, room, "forget", nil), 400, "M_UNKNOWN")
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/forget", room), map[string]any{})

	// rejoin after invite, then kick
	member(t, alice, room, "invite", map[string]any{"user_id": b})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	if res := member(t, alice, room, "kick", map[string]any{"user_id": b, "reason": "bye"}); res.Status != 200 {
		t.Fatalf("kick: %s", res.Body)
	}
	ev := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.member/%s", room, b)+"?format=event", nil)
	if ev.JSON["sender"] != a || ev.JSON["content"].(map[string]any)["reason"] != "bye" || ev.JSON["content"].(map[string]any)["membership"] != "leave" {
		t.Fatalf("kick event: %s", ev.Body)
	}
	if prev := ev.JSON["unsigned"].(map[string]any)["prev_content"].(map[string]any); prev["membership"] != "join" {
		t.Fatalf("prev_content: %s", ev.Body)
	}
	wantErr(t, member(t, alice, room, "kick", map[string]any{"user_id": b}), 403, "M_FORBIDDEN")

	// ban / unban
	if res := member(t, alice, room, "ban", map[string]any{"user_id": b}); res.Status != 200 {
		t.Fatalf("ban: %s", res.Body)
	}
	if m := membershipOf(t, alice, room, b); m != "ban" {
		t.Fatalf("after ban: %q", m)
	}
	wantErr(t, member(t, alice, room, "invite", map[string]any{"user_id": b}), 403, "M_FORBIDDEN")
	wantErr(t, member(t, bob, room, "join", nil), 403, "M_FORBIDDEN")
	if res := member(t, alice, room, "unban", map[string]any{"user_id": b}); res.Status != 200 {
		t.Fatalf("unban: %s", res.Body)
	}
	if m := membershipOf(t, alice, room, b); m != "leave" {
		t.Fatalf("after unban: %q", m)
	}
	wantErr(t, member(t, alice, room, "unban", map[string]any{"user_id": b}), 403, "M_FORBIDDEN")

	// members endpoint with filters
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/members", room)+"?membership=join", nil)
	if chunk := res.JSON["chunk"].([]any); len(chunk) != 1 {
		t.Fatalf("members?membership=join: %s", res.Body)
	}
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/members", room)+"?not_membership=join", nil)
	if chunk := res.JSON["chunk"].([]any); len(chunk) != 1 || chunk[0].(map[string]any)["state_key"] != b {
		t.Fatalf("members?not_membership=join: %s", res.Body)
	}
	wantErr(t, carol.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/members", room), nil), 403, "M_FORBIDDEN")
	wantErr(t, carol.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/state", room), nil), 403, "M_FORBIDDEN")
	wantErr(t, carol.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.create/", room), nil), 403, "M_FORBIDDEN")
	wantErr(t, carol.Do(t, http.MethodPost, "join/%23nothere:hs1.test", map[string]any{}), 404, "M_NOT_FOUND")
}

func TestKnock(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"room_version": "10", "initial_state": []map[string]any{{"type": "m.room.join_rules", "state_key": "", "content": map[string]any{"join_rule": "knock"}}}})
	res := bob.Do(t, http.MethodPost, testserver.Sprintf("knock/%s", room), map[string]any{"reason": "let me in"})
	if res.Status != 200 || res.JSON["room_id"] != room {
		t.Fatalf("knock: %d %s", res.Status, res.Body)
	}
	if m := membershipOf(t, alice, room, string(bob.UserID)); m != "knock" {
		t.Fatalf("after knock: %q", m)
	}
	member(t, alice, room, "invite", map[string]any{"user_id": string(bob.UserID)})
	member(t, bob, room, "join", nil)
	if m := membershipOf(t, alice, room, string(bob.UserID)); m != "join" {
		t.Fatalf("after knock+invite+join: %q", m)
	}
	// A public room cannot be knocked on.
	pub := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	carol := srv.Register(t, "carol")
	wantErr(t, carol.Do(t, http.MethodPost, testserver.Sprintf("knock/%s", pub), map[string]any{}), 403, "M_FORBIDDEN")
}

func TestGuestAccess(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.Registration.AllowGuests = true })
	alice := srv.Register(t, "alice")
	res := srv.Anon().MustDo(t, http.MethodPost, "register?kind=guest", map[string]any{})
	guest := &testserver.Client{S: srv, UserID: id.UserID(res.JSON["user_id"].(string)), AccessToken: res.JSON["access_token"].(string)}
	wantErr(t, guest.Do(t, http.MethodPost, "createRoom", map[string]any{}), 403, "M_GUEST_ACCESS_FORBIDDEN")
	closed := createRoom(t, alice, map[string]any{"preset": "public_chat"}) // guest_access forbidden
	wantErr(t, guest.Do(t, http.MethodPost, testserver.Sprintf("join/%s", closed), map[string]any{}), 403, "M_GUEST_ACCESS_FORBIDDEN")
	open := createRoom(t, alice, map[string]any{"preset": "public_chat", "initial_state": []map[string]any{{"type": "m.room.guest_access", "content": map[string]any{"guest_access": "can_join"}}}})
	guest.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", open), map[string]any{})
	if m := membershipOf(t, alice, open, string(guest.UserID)); m != "join" {
		t.Fatalf("guest membership %q", m)
	}
	// Closing the room to guests makes the guest leave; bob (no guest) stays.
	bob := srv.Register(t, "bob")
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", open), map[string]any{})
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.guest_access/", open), map[string]any{"guest_access": "forbidden"})
	deadline := time.Now().Add(5 * time.Second)
	for membershipOf(t, alice, open, string(guest.UserID)) != "leave" {
		if time.Now().After(deadline) {
			t.Fatalf("guest still %q after guest_access forbidden", membershipOf(t, alice, open, string(guest.UserID)))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if m := membershipOf(t, alice, open, string(bob.UserID)); m != "join" {
		t.Fatalf("bob's membership after closing to guests: %q", m)
	}
}

// TestCreateRoomRichTopic: createRoom's topic is written as plain text and as
// the m.topic content block (spec v1.15), and beats a topic in initial_state.
func TestCreateRoomRichTopic(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	room := createRoom(t, alice, map[string]any{
		"topic":         "Test Room",
		"initial_state": []map[string]any{{"type": "m.room.topic", "state_key": "", "content": map[string]any{"topic": "Shenanigans"}}},
	})
	res := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.topic/", room), nil)
	block, _ := res.JSON["m.topic"].(map[string]any)
	text, _ := block["m.text"].([]any)
	if res.JSON["topic"] != "Test Room" || len(text) != 1 {
		t.Fatalf("topic: %s", res.Body)
	}
	if rep := text[0].(map[string]any); rep["body"] != "Test Room" || rep["mimetype"] != "text/plain" {
		t.Fatalf("m.topic: %s", res.Body)
	}
	// A topic only in initial_state is written as given.
	room = createRoom(t, alice, map[string]any{
		"initial_state": []map[string]any{{"type": "m.room.topic", "state_key": "", "content": map[string]any{"topic": "Plain"}}},
	})
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.topic/", room), nil)
	if _, ok := res.JSON["m.topic"]; ok || res.JSON["topic"] != "Plain" {
		t.Fatalf("initial_state topic: %s", res.Body)
	}
}

// TestForgottenRoomHistoryForbidden: after leaving and forgetting a room, its
// messages and state can no longer be read; rejoining restores access.
func TestForgottenRoomHistoryForbidden(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	sendMsg(t, alice, room, "hello")
	member(t, bob, room, "leave", nil)
	msgs := testserver.Sprintf("rooms/%s/messages?dir=b", room)
	bob.MustDo(t, http.MethodGet, msgs, nil) // a left member reads up to their leave
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/forget", room), map[string]any{})
	wantErr(t, bob.Do(t, http.MethodGet, msgs, nil), 403, "M_FORBIDDEN")
	wantErr(t, bob.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/state", room), nil), 403, "M_FORBIDDEN")
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	bob.MustDo(t, http.MethodGet, msgs, nil)
}

// TestTxnIDScopedToEndpoint: a transaction ID is scoped to the device and the
// endpoint: the same ID in another room, for another event type or as a
// redaction is a new request; in the same endpoint it is a retry.
func TestTxnIDScopedToEndpoint(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	room1 := createRoom(t, alice, map[string]any{})
	room2 := createRoom(t, alice, map[string]any{})
	send := func(room, typ string, body map[string]any) any {
		return alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/%s/abc", room, typ), body).JSON["event_id"]
	}
	e1 := send(room1, "m.room.message", map[string]any{"msgtype": "m.text", "body": "first"})
	if again := send(room1, "m.room.message", map[string]any{"msgtype": "m.text", "body": "second"}); again != e1 {
		t.Fatalf("retry in the same room: %v, want %v", again, e1)
	}
	e2 := send(room2, "m.room.message", map[string]any{"msgtype": "m.text", "body": "first"})
	e3 := send(room1, "m.custom", map[string]any{"x": 1})
	red := alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/redact/%s/abc", room1, e3), map[string]any{}).JSON["event_id"]
	seen := map[any]bool{e1: true}
	for _, e := range []any{e2, e3, red} {
		if seen[e] {
			t.Fatalf("txn ID reused across endpoints: %v %v %v %v", e1, e2, e3, red)
		}
		seen[e] = true
	}
}

// TestMessagesUnsignedMembership: /messages, /context and /event give the
// requesting user's membership at each event in unsigned.membership.
func TestMessagesUnsignedMembership(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	pre := sendMsg(t, alice, room, "prejoin")
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	post := sendMsg(t, alice, room, "postjoin")

	res := bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages?dir=b&limit=50", room), nil)
	got := map[string]string{}
	for _, e := range res.JSON["chunk"].([]any) {
		ev := e.(map[string]any)
		got[ev["event_id"].(string)], _ = ev["unsigned"].(map[string]any)["membership"].(string)
	}
	if got[pre] != "leave" || got[post] != "join" {
		t.Fatalf("messages: %s", res.Body)
	}
	ev := bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, pre), nil)
	if ev.JSON["unsigned"].(map[string]any)["membership"] != "leave" {
		t.Fatalf("event: %s", ev.Body)
	}
	ctx := bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/context/%s", room, post), nil)
	if ctx.JSON["event"].(map[string]any)["unsigned"].(map[string]any)["membership"] != "join" {
		t.Fatalf("context: %s", ctx.Body)
	}
}

package clientapi_test

import (
	"net/http"
	"testing"

	"parley/internal/testserver"
)

// TestRoomCompat covers behaviours clients and SyTest rely on beyond the bare spec.
func TestRoomCompat(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat", "room_alias_name": "compat"})
	other := createRoom(t, alice, map[string]any{"preset": "public_chat"})

	// Setting identical state twice sends one event.
	p := testserver.Sprintf("rooms/%s/state/m.room.topic/", room)
	e1 := alice.MustDo(t, http.MethodPut, p, map[string]any{"topic": "same"}).JSON["event_id"]
	e2 := alice.MustDo(t, http.MethodPut, p, map[string]any{"topic": "same"}).JSON["event_id"]
	e3 := alice.MustDo(t, http.MethodPut, p, map[string]any{"topic": "changed"}).JSON["event_id"]
	if e1 != e2 || e2 == e3 {
		t.Fatalf("idempotent state: %v %v %v", e1, e2, e3)
	}

	// Join with custom content.
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{"foo": "bar"})
	res := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.member/%s", room, bob.UserID), nil)
	if res.JSON["foo"] != "bar" || res.JSON["membership"] != "join" {
		t.Fatalf("custom join content: %s", res.Body)
	}
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/joined_members", room), nil)
	if m := res.JSON["joined"].(map[string]any)[string(bob.UserID)].(map[string]any); len(m) != 2 {
		t.Fatalf("joined_members keys: %s", res.Body)
	}

	// Legacy POST /send without a transaction ID.
	res = bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/send/m.room.message", room), map[string]any{"body": "legacy", "msgtype": "m.text"})
	msg := res.JSON["event_id"].(string)

	// Redacting an event of another room is 400.
	wantErr(t, alice.Do(t, http.MethodPut, testserver.Sprintf("rooms/%s/redact/%s/x1", other, msg), map[string]any{}), 400, "M_BAD_JSON")
	// Legacy POST /redact without a transaction ID (SyTest's and older clients').
	junk := sendMsg(t, bob, room, "junk")
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/redact/%s", room, junk), map[string]any{"reason": "legacy"})
	if ev := bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, junk), nil); ev.JSON["content"].(map[string]any)["body"] != nil {
		t.Fatalf("legacy redaction not applied: %s", ev.Body)
	}

	// /context is 403 for users who may not read the room, and lazy-loads members.
	priv := createRoom(t, alice, map[string]any{"preset": "private_chat"})
	pm := sendMsg(t, alice, priv, "private")
	wantErr(t, carol.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/context/%s", priv, pm), nil), 403, "M_FORBIDDEN")
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/context/%s", room, msg)+`?limit=0&filter={"lazy_load_members":true}`, nil)
	if st := res.JSON["state"].([]any); len(st) != 1 || st[0].(map[string]any)["state_key"] != string(bob.UserID) {
		t.Fatalf("context lazy-loaded state: %s", res.Body)
	}
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room)+`?dir=b&limit=1&filter={"lazy_load_members":true}`, nil)
	if st := res.JSON["state"].([]any); len(st) != 1 || st[0].(map[string]any)["state_key"] != string(bob.UserID) {
		t.Fatalf("messages lazy-loaded state: %s", res.Body)
	}

	// Canonical alias: bad syntax is M_INVALID_PARAM, a foreign alias M_BAD_ALIAS.
	cp := testserver.Sprintf("rooms/%s/state/m.room.canonical_alias/", room)
	wantErr(t, alice.Do(t, http.MethodPut, cp, map[string]any{"alias": "#compat:hs1.test", "alt_aliases": []string{"%compat:hs1.test"}}), 400, "M_INVALID_PARAM")
	alice.MustDo(t, http.MethodPut, "directory/room/%23elsewhere:hs1.test", map[string]any{"room_id": other})
	wantErr(t, alice.Do(t, http.MethodPut, cp, map[string]any{"alias": "#compat:hs1.test", "alt_aliases": []string{"#elsewhere:hs1.test"}}), 400, "M_BAD_ALIAS")
	alice.MustDo(t, http.MethodPut, cp, map[string]any{"alias": "#compat:hs1.test"})

	// Bob (PL 0) cannot delete Alice's alias; after promotion he can, and the
	// canonical alias event loses it.
	wantErr(t, bob.Do(t, http.MethodDelete, "directory/room/%23compat:hs1.test", nil), 403, "M_FORBIDDEN")
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.power_levels/", room), map[string]any{
		"users": map[string]any{string(alice.UserID): 100, string(bob.UserID): 50}, "state_default": 50, "events": map[string]any{},
	})
	bob.MustDo(t, http.MethodDelete, "directory/room/%23compat:hs1.test", nil)
	res = alice.MustDo(t, http.MethodGet, cp, nil)
	if _, ok := res.JSON["alias"]; ok {
		t.Fatalf("canonical alias kept the deleted alias: %s", res.Body)
	}
}

// TestRoomBadInput: malformed input gets 4xx Matrix errors, never 500.
func TestRoomBadInput(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	room := createRoom(t, alice, map[string]any{})
	ev := sendMsg(t, alice, room, "x")
	cases := []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{"POST", "join/notaroom", map[string]any{}, 400, "M_INVALID_PARAM"},
		{"GET", testserver.Sprintf("rooms/%s/event/%s", room, "$nope"), nil, 404, "M_NOT_FOUND"},
		{"GET", testserver.Sprintf("rooms/%s/members", room) + "?at=zzz", nil, 400, "M_INVALID_PARAM"},
		{"GET", testserver.Sprintf("rooms/%s/members", room) + "?membership=dancing", nil, 400, "M_INVALID_PARAM"},
		{"GET", testserver.Sprintf("rooms/%s/context/%s", room, ev) + "?limit=-1", nil, 400, "M_INVALID_PARAM"},
		{"GET", testserver.Sprintf("rooms/%s/messages", room) + "?limit=abc", nil, 400, "M_INVALID_PARAM"},
		{"GET", testserver.Sprintf("rooms/%s/messages", room) + "?filter=notjson", nil, 400, "M_BAD_JSON"},
		{"GET", testserver.Sprintf("rooms/%s/state/m.room.name/", room) + "?format=xml", nil, 400, "M_INVALID_PARAM"},
		{"PUT", testserver.Sprintf("rooms/%s/state/m.room.name/", room), "[1]", 400, "M_BAD_JSON"},
		{"PUT", testserver.Sprintf("rooms/%s/state/m.room.create/", room), map[string]any{}, 400, "M_BAD_JSON"},
		{"PUT", testserver.Sprintf("rooms/%s/send/m.room.message/f1", room), `{"n":1.5}`, 400, "M_BAD_JSON"},
		{"PUT", testserver.Sprintf("rooms/%s/redact/%s/r1", room, "nope"), map[string]any{}, 400, "M_INVALID_PARAM"},
		{"POST", testserver.Sprintf("rooms/%s/kick", room), map[string]any{"user_id": "bad"}, 400, "M_INVALID_PARAM"},
		{"POST", "createRoom", map[string]any{"initial_state": []map[string]any{{"type": "m.room.name"}}}, 400, "M_BAD_JSON"},
		{"POST", "createRoom", map[string]any{"room_version": "12", "creation_content": map[string]any{"additional_creators": "x"}}, 400, "M_INVALID_ROOM_STATE"},
		{"POST", "createRoom", map[string]any{"power_level_content_override": map[string]any{"users": 5}}, 400, "M_INVALID_ROOM_STATE"},
		{"PUT", "directory/room/%23x:hs1.test", map[string]any{"room_id": "!nope:hs1.test"}, 404, "M_NOT_FOUND"},
	}
	for _, c := range cases {
		res := alice.Do(t, c.method, c.path, c.body)
		if res.Status != c.status || res.ErrCode != c.code {
			t.Errorf("%s %s: want %d %s, got %d: %s", c.method, c.path, c.status, c.code, res.Status, res.Body)
		}
	}
}

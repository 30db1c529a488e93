package clientapi_test

import (
	"fmt"
	"net/http"
	"testing"

	"parley/internal/testserver"
)

func chunkBodies(t *testing.T, res *testserver.Response) []string {
	t.Helper()
	var out []string
	for _, e := range res.JSON["chunk"].([]any) {
		ev := e.(map[string]any)
		if ev["type"] != "m.room.message" {
			continue
		}
		body, _ := ev["content"].(map[string]any)["body"].(string)
		out = append(out, body)
	}
	return out
}

func TestMessagesPagination(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	member(t, bob, room, "join", nil)
	var ids []string
	for i := 0; i < 25; i++ {
		ids = append(ids, sendMsg(t, alice, room, fmt.Sprint(i)))
	}
	// Backwards from the newest, in pages of 10, until end is absent.
	var got []string
	from := ""
	for page := 0; ; page++ {
		path := testserver.Sprintf("rooms/%s/messages", room) + "?dir=b&limit=10"
		if from != "" {
			path += "&from=" + from
		}
		res := bob.MustDo(t, http.MethodGet, path, nil)
		if res.JSON["start"] == nil {
			t.Fatalf("no start: %s", res.Body)
		}
		got = append(got, chunkBodies(t, res)...)
		end, ok := res.JSON["end"].(string)
		if !ok {
			break
		}
		from = end
		if page > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if len(got) != 25 || got[0] != "24" || got[24] != "0" {
		t.Fatalf("backwards pagination: %v", got)
	}
	// Forwards from the start with a type filter.
	res := bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room)+`?dir=f&limit=5&filter={"types":["m.room.message"]}`, nil)
	if b := chunkBodies(t, res); len(b) != 5 || b[0] != "0" || b[4] != "4" || len(res.JSON["chunk"].([]any)) != 5 {
		t.Fatalf("forwards: %s", res.Body)
	}
	res2 := bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room)+`?dir=f&limit=5&filter={"types":["m.room.message"]}&from=`+res.JSON["end"].(string), nil)
	if b := chunkBodies(t, res2); len(b) != 5 || b[0] != "5" {
		t.Fatalf("forwards page 2: %s", res2.Body)
	}
	res = bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room)+`?dir=b&filter={"not_types":["m.room.message"]}&limit=100`, nil)
	if len(chunkBodies(t, res)) != 0 || len(res.JSON["chunk"].([]any)) == 0 {
		t.Fatalf("not_types: %s", res.Body)
	}
	wantErr(t, bob.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room)+"?dir=x", nil), 400, "M_INVALID_PARAM")
	wantErr(t, bob.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room)+"?from=garbage", nil), 400, "M_INVALID_PARAM")
	carol := srv.Register(t, "carol")
	wantErr(t, carol.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room), nil), 403, "M_FORBIDDEN")

	// Context around message 10.
	res = bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/context/%s", room, ids[10])+"?limit=4", nil)
	if res.JSON["event"].(map[string]any)["event_id"] != ids[10] {
		t.Fatalf("context event: %s", res.Body)
	}
	before, after := res.JSON["events_before"].([]any), res.JSON["events_after"].([]any)
	if len(before) != 2 || len(after) != 2 || before[0].(map[string]any)["event_id"] != ids[9] || after[0].(map[string]any)["event_id"] != ids[11] {
		t.Fatalf("context: %s", res.Body)
	}
	if len(res.JSON["state"].([]any)) == 0 {
		t.Fatalf("context state empty: %s", res.Body)
	}
	// Paginating back from context's start continues before events_before.
	res = bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room)+"?dir=b&limit=1&from="+res.JSON["start"].(string), nil)
	if b := chunkBodies(t, res); len(b) != 1 || b[0] != "7" {
		t.Fatalf("messages from context start: %s", res.Body)
	}
	wantErr(t, bob.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/context/%s", room, "$nope"), nil), 404, "M_NOT_FOUND")
}

func TestRedactionVisible(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	member(t, bob, room, "join", nil)
	aliceMsg := sendMsg(t, alice, room, "secret")
	bobMsg := sendMsg(t, bob, room, "oops")

	// Bob (PL 0) may redact his own event but not Alice's.
	wantErr(t, bob.Do(t, http.MethodPut, testserver.Sprintf("rooms/%s/redact/%s/t1", room, aliceMsg), map[string]any{}), 403, "M_FORBIDDEN")
	red := bob.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/redact/%s/t2", room, bobMsg), map[string]any{"reason": "typo"})
	// Alice (PL 100) may redact Bob's or her own.
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/redact/%s/t3", room, aliceMsg), map[string]any{})

	res := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, bobMsg), nil)
	if len(res.JSON["content"].(map[string]any)) != 0 {
		t.Fatalf("content not redacted: %s", res.Body)
	}
	rb := res.JSON["unsigned"].(map[string]any)["redacted_because"].(map[string]any)
	if rb["event_id"] != red.JSON["event_id"] || rb["content"].(map[string]any)["reason"] != "typo" {
		t.Fatalf("redacted_because: %s", res.Body)
	}
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room)+"?dir=b&limit=20", nil)
	seen := 0
	for _, e := range res.JSON["chunk"].([]any) {
		ev := e.(map[string]any)
		switch ev["event_id"] {
		case bobMsg, aliceMsg:
			seen++
			if len(ev["content"].(map[string]any)) != 0 || ev["unsigned"].(map[string]any)["redacted_because"] == nil {
				t.Fatalf("unredacted in /messages: %v", ev)
			}
		case red.JSON["event_id"]:
			if ev["redacts"] != bobMsg {
				t.Fatalf("redaction event lacks redacts: %v", ev)
			}
		}
	}
	if seen != 2 {
		t.Fatalf("redacted events missing from /messages: %s", res.Body)
	}
}

func TestHistoryVisibility(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.history_visibility/", room), map[string]any{"history_visibility": "joined"})
	early := sendMsg(t, alice, room, "before bob")
	member(t, bob, room, "join", nil)
	sendMsg(t, alice, room, "with bob")
	member(t, bob, room, "leave", nil)
	sendMsg(t, alice, room, "after bob")

	res := bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room)+"?dir=b&limit=50", nil)
	if b := chunkBodies(t, res); len(b) != 1 || b[0] != "with bob" {
		t.Fatalf("joined visibility, left user sees %v", b)
	}
	wantErr(t, bob.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, early), nil), 404, "M_NOT_FOUND")

	// shared: a joined member sees history from before their join.
	room2 := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	sendMsg(t, alice, room2, "old")
	member(t, bob, room2, "join", nil)
	res = bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room2)+"?dir=b&limit=50", nil)
	if b := chunkBodies(t, res); len(b) != 1 || b[0] != "old" {
		t.Fatalf("shared visibility: %v", b)
	}

	// world_readable: a non-member may read.
	room3 := createRoom(t, alice, map[string]any{"preset": "public_chat", "initial_state": []map[string]any{{"type": "m.room.history_visibility", "content": map[string]any{"history_visibility": "world_readable"}}}})
	sendMsg(t, alice, room3, "public")
	res = bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room3)+"?dir=b", nil)
	if b := chunkBodies(t, res); len(b) != 1 {
		t.Fatalf("world_readable: %s", res.Body)
	}
}

func TestAliases(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	alice.MustDo(t, http.MethodPut, "directory/room/%23a1:hs1.test", map[string]any{"room_id": room})
	wantErr(t, bob.Do(t, http.MethodPut, "directory/room/%23a1:hs1.test", map[string]any{"room_id": room}), 409, "M_UNKNOWN")
	wantErr(t, alice.Do(t, http.MethodPut, "directory/room/nohash", map[string]any{"room_id": room}), 400, "M_INVALID_PARAM")
	wantErr(t, alice.Do(t, http.MethodPut, "directory/room/%23x:other.test", map[string]any{"room_id": room}), 400, "M_INVALID_PARAM")
	res := bob.MustDo(t, http.MethodPost, "join/%23a1:hs1.test", map[string]any{})
	if res.JSON["room_id"] != room {
		t.Fatalf("join by alias: %s", res.Body)
	}
	// canonical alias must point here
	wantErr(t, alice.Do(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.canonical_alias/", room), map[string]any{"alias": "#nope:hs1.test"}), 400, "M_BAD_ALIAS")
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.canonical_alias/", room), map[string]any{"alias": "#a1:hs1.test"})
	res = bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/aliases", room), nil)
	if a := res.JSON["aliases"].([]any); len(a) != 1 || a[0] != "#a1:hs1.test" {
		t.Fatalf("aliases: %s", res.Body)
	}
	wantErr(t, bob.Do(t, http.MethodDelete, "directory/room/%23a1:hs1.test", nil), 403, "M_FORBIDDEN")
	alice.MustDo(t, http.MethodDelete, "directory/room/%23a1:hs1.test", nil)
	wantErr(t, alice.Do(t, http.MethodGet, "directory/room/%23a1:hs1.test", nil), 404, "M_NOT_FOUND")
	wantErr(t, alice.Do(t, http.MethodDelete, "directory/room/%23a1:hs1.test", nil), 404, "M_NOT_FOUND")
}

// TestStateSnapshots: many state changes cross the state-group snapshot
// interval; state stays exact, a left member sees state as of their leave,
// and /members?at= gives past membership.
func TestStateSnapshots(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	for i := 0; i < 45; i++ {
		alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/org.example.k/%s", room, fmt.Sprint("k", i%30)), map[string]any{"v": i})
	}
	atToken := alice.MustDo(t, http.MethodGet, "sync", nil).JSON["next_batch"].(string)
	member(t, bob, room, "leave", nil)
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.topic/", room), map[string]any{"topic": "after bob"})

	res := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state", room), nil)
	var state []map[string]any
	mustUnmarshal(t, res.Body, &state)
	vals := map[string]float64{}
	for _, ev := range state {
		if ev["type"] == "org.example.k" {
			vals[ev["state_key"].(string)] = ev["content"].(map[string]any)["v"].(float64)
		}
	}
	if len(vals) != 30 || vals["k0"] != 30 || vals["k14"] != 44 || vals["k15"] != 15 {
		t.Fatalf("state after 45 changes: %v", vals)
	}
	// Bob left before the topic: he sees the state at his leave.
	res = bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state", room), nil)
	state = nil
	mustUnmarshal(t, res.Body, &state)
	for _, ev := range state {
		if ev["type"] == "m.room.topic" {
			t.Fatalf("left member sees later state: %v", ev)
		}
	}
	wantErr(t, bob.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.topic/", room), nil), 404, "M_NOT_FOUND")
	// members at the sync token (before bob left): bob joined.
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/members", room)+"?membership=join&at="+atToken, nil)
	if n := len(res.JSON["chunk"].([]any)); n != 2 {
		t.Fatalf("members at token: %d: %s", n, res.Body)
	}
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/members", room)+"?membership=join", nil)
	if n := len(res.JSON["chunk"].([]any)); n != 1 {
		t.Fatalf("members now: %d", n)
	}
}

func TestRoomInitialSync(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat", "visibility": "public"})
	sendMsg(t, alice, room, "private")
	wantErr(t, bob.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/initialSync", room), nil), 403, "M_FORBIDDEN")
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.history_visibility/", room), map[string]any{"history_visibility": "world_readable"})
	sendMsg(t, alice, room, "public")

	// A non-member of a world_readable room sees the visibility change and what follows.
	res := bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/initialSync", room), nil)
	chunk := res.JSON["messages"].(map[string]any)["chunk"].([]any)
	if len(chunk) != 2 || chunk[0].(map[string]any)["type"] != "m.room.history_visibility" || chunk[1].(map[string]any)["content"].(map[string]any)["body"] != "public" {
		t.Fatalf("world_readable initialSync: %s", res.Body)
	}
	if _, ok := res.JSON["membership"]; ok || res.JSON["visibility"] != "public" {
		t.Fatalf("membership/visibility: %s", res.Body)
	}
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/initialSync", room)+"?limit=3", nil)
	if res.JSON["membership"] != "join" || len(res.JSON["messages"].(map[string]any)["chunk"].([]any)) != 3 || len(res.JSON["state"].([]any)) < 5 {
		t.Fatalf("member initialSync: %s", res.Body)
	}
	if ev := res.JSON["state"].([]any)[0].(map[string]any); ev["user_id"] != ev["sender"] {
		t.Fatalf("initialSync events lack user_id: %v", ev)
	}
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/initialSync", room)+"?limit=0", nil)
	if n := len(res.JSON["messages"].(map[string]any)["chunk"].([]any)); n != 0 {
		t.Fatalf("limit=0 gave %d events", n)
	}
}

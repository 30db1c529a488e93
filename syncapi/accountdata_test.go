package syncapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"parley/internal/testserver"
)

func TestAccountData(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := newRoom(t, alice)
	other := newRoom(t, bob)

	path := testserver.Sprintf("user/%s/account_data/%s", alice.UserID, "com.example.pref")
	wantErr(t, alice.Do(t, http.MethodGet, path, nil), 404, "M_NOT_FOUND")
	alice.MustDo(t, http.MethodPut, path, map[string]any{"theme": "dark"})
	res := alice.MustDo(t, http.MethodGet, path, nil)
	if res.JSON["theme"] != "dark" {
		t.Fatalf("GET: %s", res.Body)
	}
	wantErr(t, bob.Do(t, http.MethodGet, path, nil), 403, "M_FORBIDDEN")
	wantErr(t, bob.Do(t, http.MethodPut, path, map[string]any{}), 403, "M_FORBIDDEN")
	wantErr(t, alice.Do(t, http.MethodPut, path, `[1]`), 400, "M_BAD_JSON")
	wantErr(t, alice.Do(t, http.MethodPut, path, `{`), 400, "M_NOT_JSON")
	for _, typ := range []string{"m.fully_read", "m.push_rules"} {
		wantErr(t, alice.Do(t, http.MethodPut, testserver.Sprintf("user/%s/account_data/%s", alice.UserID, typ), map[string]any{}), 405, "M_BAD_JSON")
		wantErr(t, alice.Do(t, http.MethodPut, testserver.Sprintf("user/%s/rooms/%s/account_data/%s", alice.UserID, room, typ), map[string]any{}), 405, "M_BAD_JSON")
	}
	wantErr(t, alice.Do(t, http.MethodPut, testserver.Sprintf("user/%s/rooms/%s/account_data/x", alice.UserID, "notaroom"), map[string]any{}), 400, "M_INVALID_PARAM")

	roomPath := testserver.Sprintf("user/%s/rooms/%s/account_data/%s", alice.UserID, room, "com.example.room")
	alice.MustDo(t, http.MethodPut, roomPath, map[string]any{"n": 1})
	if res := alice.MustDo(t, http.MethodGet, roomPath, nil); res.JSON["n"] != float64(1) {
		t.Fatalf("room GET: %s", res.Body)
	}
	// Global and room account data are separate namespaces.
	wantErr(t, alice.Do(t, http.MethodGet, testserver.Sprintf("user/%s/account_data/%s", alice.UserID, "com.example.room"), nil), 404, "M_NOT_FOUND")
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("user/%s/rooms/%s/account_data/%s", alice.UserID, other, "com.example.room"), map[string]any{"n": 2})

	s1 := inboxSync(t, alice, nil)
	if got := findType(s1.AccountData.Events, "com.example.pref"); len(got) != 1 || got[0].content()["theme"] != "dark" {
		t.Fatalf("initial sync account data: %s", s1.raw)
	}
	if len(findType(s1.AccountData.Events, "m.push_rules")) != 1 {
		t.Fatalf("initial sync lacks m.push_rules: %s", s1.raw)
	}
	if got := findType(s1.Rooms.Join[room].AccountData.Events, "com.example.room"); len(got) != 1 {
		t.Fatalf("room account data missing: %s", s1.raw)
	}
	if _, ok := s1.Rooms.Join[other]; ok {
		t.Fatalf("room the user is not joined to appears: %s", s1.raw)
	}
	// Incremental: nothing new, so nothing again.
	s2 := inboxSync(t, alice, since(s1.NextBatch))
	if len(s2.AccountData.Events) != 0 || len(s2.Rooms.Join) != 0 {
		t.Fatalf("account data repeated: %s", s2.raw)
	}
	alice.MustDo(t, http.MethodPut, path, map[string]any{"theme": "light"})
	s3 := inboxSync(t, alice, map[string]string{"since": s2.NextBatch, "timeout": "5000"})
	if got := findType(s3.AccountData.Events, "com.example.pref"); len(got) != 1 || got[0].content()["theme"] != "light" {
		t.Fatalf("update not in incremental sync: %s", s3.raw)
	}
	// Bob never sees alice's account data.
	if got := findType(inboxSync(t, bob, nil).AccountData.Events, "com.example.pref"); len(got) != 0 {
		t.Fatalf("bob sees alice's account data")
	}
}

func TestTags(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := newRoom(t, alice)
	tags := testserver.Sprintf("user/%s/rooms/%s/tags", alice.UserID, room)

	if res := alice.MustDo(t, http.MethodGet, tags, nil); len(res.JSON["tags"].(map[string]any)) != 0 {
		t.Fatalf("tags not empty: %s", res.Body)
	}
	s0 := inboxSync(t, alice, nil)
	alice.MustDo(t, http.MethodPut, tags+"/m.favourite", map[string]any{"order": 0.25})
	alice.MustDo(t, http.MethodPut, tags+"/u.work", map[string]any{})
	wantErr(t, alice.Do(t, http.MethodPut, tags+"/u.bad", map[string]any{"order": "high"}), 400, "M_BAD_JSON")
	wantErr(t, bob.Do(t, http.MethodPut, testserver.Sprintf("user/%s/rooms/%s/tags/x", alice.UserID, room), map[string]any{}), 403, "M_FORBIDDEN")
	wantErr(t, bob.Do(t, http.MethodGet, tags, nil), 403, "M_FORBIDDEN")

	res := alice.MustDo(t, http.MethodGet, tags, nil)
	got := res.JSON["tags"].(map[string]any)
	if len(got) != 2 || got["m.favourite"].(map[string]any)["order"] != 0.25 {
		t.Fatalf("tags: %s", res.Body)
	}
	alice.MustDo(t, http.MethodDelete, tags+"/u.work", nil)
	res = alice.MustDo(t, http.MethodGet, tags, nil)
	if got := res.JSON["tags"].(map[string]any); len(got) != 1 || got["u.work"] != nil {
		t.Fatalf("after delete: %s", res.Body)
	}
	s1 := inboxSync(t, alice, since(s0.NextBatch))
	tagEvs := findType(s1.Rooms.Join[room].AccountData.Events, "m.tag")
	if len(tagEvs) != 1 {
		t.Fatalf("m.tag not in sync once: %s", s1.raw)
	}
	if tg := tagEvs[0].content()["tags"].(map[string]any); len(tg) != 1 || tg["m.favourite"] == nil {
		t.Fatalf("m.tag content: %s", s1.raw)
	}
}

// TestLeftRoomAccountData checks that a room in rooms.leave carries its
// account data (here: written before leaving, on a sync with include_leave).
func TestLeftRoomAccountData(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := newRoom(t, alice, bob)
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("user/%s/rooms/%s/account_data/com.example.x", bob.UserID, room), map[string]any{"v": 1})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/leave", room), map[string]any{})
	res := bob.MustDo(t, http.MethodGet, "sync?filter="+url.QueryEscape(`{"room":{"include_leave":true}}`), nil)
	var body struct {
		Rooms struct {
			Leave map[string]struct {
				AccountData struct {
					Events []syncEvent `json:"events"`
				} `json:"account_data"`
			} `json:"leave"`
		} `json:"rooms"`
	}
	if err := json.Unmarshal(res.Body, &body); err != nil {
		t.Fatal(err)
	}
	lr, ok := body.Rooms.Leave[string(room)]
	if !ok {
		t.Fatalf("left room not listed: %s", res.Body)
	}
	if len(findType(lr.AccountData.Events, "com.example.x")) != 1 {
		t.Fatalf("left room without its account data: %s", res.Body)
	}
}

package adminapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"parley/internal/testserver"
)

func TestLockSuspendShadowBan(t *testing.T) {
	srv := testserver.New(t)
	admin := srv.Register(t, "admin")
	makeAdmin(t, srv, admin)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	u := func(c *testserver.Client) string { return url.PathEscape(string(c.UserID)) }

	// Shadow-ban: bob's sends succeed for him but nobody receives them.
	if res := bob.Do(t, http.MethodPost, "/_synapse/admin/v1/users/"+u(bob)+"/shadow_ban", map[string]any{}); res.Status != 403 {
		t.Fatalf("non-admin shadow ban: %d", res.Status)
	}
	admin.MustDo(t, http.MethodPost, "/_synapse/admin/v1/users/"+u(bob)+"/shadow_ban", map[string]any{})
	if res := admin.MustDo(t, http.MethodGet, "/_synapse/admin/v2/users/"+u(bob), nil); res.JSON["shadow_banned"] != true {
		t.Fatalf("user shows no shadow ban: %s", res.Body)
	}
	fake := send(t, bob, room, "spam spam")
	if res := alice.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, fake), nil); res.Status != 404 {
		t.Fatalf("shadow-banned message delivered: %d", res.Status)
	}
	admin.MustDo(t, http.MethodDelete, "/_synapse/admin/v1/users/"+u(bob)+"/shadow_ban", nil)
	real := send(t, bob, room, "sorry")
	alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, real), nil)

	// Suspension: no sending or joining, reading still works.
	res := admin.MustDo(t, http.MethodPut, "/_synapse/admin/v1/suspend/"+u(bob), map[string]any{"suspend": true})
	if res.JSON["user_"+string(bob.UserID)+"_suspended"] != true {
		t.Fatalf("suspend: %s", res.Body)
	}
	for _, tc := range []struct{ method, path string }{
		{http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/s1", room)},
		{http.MethodPost, "createRoom"},
		{http.MethodPost, testserver.Sprintf("join/%s", room)},
	} {
		if res := bob.Do(t, tc.method, tc.path, map[string]any{"msgtype": "m.text", "body": "x"}); res.Status != 403 || res.ErrCode != "M_USER_SUSPENDED" {
			t.Errorf("suspended %s %s: %d %s", tc.method, tc.path, res.Status, res.Body)
		}
	}
	bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room), nil)
	admin.MustDo(t, http.MethodPut, "/_synapse/admin/v1/suspend/"+u(bob), map[string]any{"suspend": false})
	send(t, bob, room, "back")

	// Lock: every request fails with M_USER_LOCKED until unlocked.
	admin.MustDo(t, http.MethodPut, "/_synapse/admin/v2/users/"+u(bob), map[string]any{"locked": true})
	res = bob.Do(t, http.MethodGet, "account/whoami", nil)
	if res.Status != 401 || res.ErrCode != "M_USER_LOCKED" || res.JSON["soft_logout"] != true {
		t.Fatalf("locked: %d %s", res.Status, res.Body)
	}
	if res := admin.MustDo(t, http.MethodGet, "/_synapse/admin/v2/users/"+u(bob), nil); res.JSON["locked"] != true {
		t.Fatalf("user shows no lock: %s", res.Body)
	}
	alice.MustDo(t, http.MethodGet, "account/whoami", nil) // others unaffected
	admin.MustDo(t, http.MethodPut, "/_synapse/admin/v2/users/"+u(bob), map[string]any{"locked": false})
	bob.MustDo(t, http.MethodGet, "account/whoami", nil)
	if res := admin.Do(t, http.MethodPut, "/_synapse/admin/v2/users/"+u(admin), map[string]any{"locked": true}); res.Status != 400 {
		t.Fatalf("self lock: %d", res.Status)
	}
	if n := len(auditEntries(t, admin, "action=lock")); n != 2 {
		t.Fatalf("lock audit: %d", n)
	}
}

// syncSince syncs c from since (timeout 0) and returns the new batch token
// and the ephemeral and timeline events of room as raw JSON text.
func syncSince(t *testing.T, c *testserver.Client, since, room string) (next, ephemeral, timeline string) {
	t.Helper()
	path := "sync?timeout=0"
	if since != "" {
		path += "&since=" + url.QueryEscape(since)
	}
	res := c.MustDo(t, http.MethodGet, path, nil)
	next = res.JSON["next_batch"].(string)
	rooms, _ := res.JSON["rooms"].(map[string]any)
	join, _ := rooms["join"].(map[string]any)
	r, _ := join[room].(map[string]any)
	if r == nil {
		return next, "", ""
	}
	e, _ := json.Marshal(r["ephemeral"])
	tl, _ := json.Marshal(r["timeline"])
	return next, string(e), string(tl)
}

// TestShadowBanEverything: a shadow-banned user's state events, invites
// (also createRoom's), typing, public read receipts, profile changes and
// redactions all answer success, and another user sees none of them. After
// the ban is lifted the same requests are seen, so the observation works.
func TestShadowBanEverything(t *testing.T) {
	srv := testserver.New(t)
	admin := srv.Register(t, "admin")
	makeAdmin(t, srv, admin)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	u := url.PathEscape(string(bob.UserID))
	room := createRoom(t, bob, map[string]any{"preset": "public_chat"}) // bob is its admin
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	own := send(t, bob, room, "bob's message")
	msg := send(t, alice, room, "alice's message")
	nameBefore := alice.MustDo(t, http.MethodGet, testserver.Sprintf("profile/%s/displayname", bob.UserID), nil).JSON["displayname"]
	since, _, _ := syncSince(t, alice, "", room)
	carolSince := carol.MustDo(t, http.MethodGet, "sync?timeout=0", nil).JSON["next_batch"].(string)

	admin.MustDo(t, http.MethodPost, "/_synapse/admin/v1/users/"+u+"/shadow_ban", map[string]any{})

	res := bob.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.topic", room), map[string]any{"topic": "spam topic"})
	if ev, _ := res.JSON["event_id"].(string); !strings.HasPrefix(ev, "$") {
		t.Fatalf("state event answer: %s", res.Body)
	}
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.name/", room), map[string]any{"name": "spam name"})
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/redact/%s/rd1", room, own), map[string]any{"reason": "x"})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/invite", room), map[string]any{"user_id": carol.UserID})
	created := bob.MustDo(t, http.MethodPost, "createRoom", map[string]any{"invite": []string{string(carol.UserID)}, "name": "dm"}).JSON["room_id"].(string)
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/typing/%s", room, bob.UserID), map[string]any{"typing": true, "timeout": 30000})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", room, msg), map[string]any{})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/read_markers", room), map[string]any{"m.fully_read": msg, "m.read": msg})
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("profile/%s/displayname", bob.UserID), map[string]any{"displayname": "Spammer"})
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("profile/%s/avatar_url", bob.UserID), map[string]any{"avatar_url": "mxc://hs1.test/spam"})
	// Bob may still read, join and leave.
	third := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", third), map[string]any{})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/leave", third), map[string]any{})

	if res := alice.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.topic", room), nil); res.Status != http.StatusNotFound {
		t.Errorf("topic set by a shadow-banned user: %d %s", res.Status, res.Body)
	}
	if res := alice.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.name", room), nil); res.Status != http.StatusNotFound {
		t.Errorf("name set by a shadow-banned user: %d %s", res.Status, res.Body)
	}
	if res := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, own), nil); !strings.Contains(string(res.Body), "bob's message") {
		t.Errorf("redacted by a shadow-banned user: %s", res.Body)
	}
	if res := alice.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.member/%s", room, carol.UserID), nil); res.Status != http.StatusNotFound {
		t.Errorf("invite by a shadow-banned user: %d %s", res.Status, res.Body)
	}
	if res := carol.MustDo(t, http.MethodGet, "sync?timeout=0&since="+url.QueryEscape(carolSince), nil); strings.Contains(string(res.Body), room) || strings.Contains(string(res.Body), created) {
		t.Errorf("carol sees an invite from a shadow-banned user: %s", res.Body)
	}
	if res := admin.MustDo(t, http.MethodGet, "/_synapse/admin/v1/rooms/"+url.PathEscape(created)+"/members", nil); res.JSON["total"] != float64(1) {
		t.Errorf("createRoom invited despite the shadow ban: %s", res.Body)
	}
	if res := alice.MustDo(t, http.MethodGet, testserver.Sprintf("profile/%s", bob.UserID), nil); res.JSON["displayname"] != nameBefore || res.JSON["avatar_url"] != nil {
		t.Errorf("profile changed by a shadow-banned user: %s", res.Body)
	}
	since, eph, tl := syncSince(t, alice, since, room)
	if strings.Contains(eph, string(bob.UserID)) || strings.Contains(tl, string(bob.UserID)) {
		t.Errorf("alice sees bob's activity: ephemeral %s timeline %s", eph, tl)
	}
	// Bob's own unread state still follows his (now private) receipt.
	if res := bob.MustDo(t, http.MethodGet, "sync?timeout=0", nil); !strings.Contains(string(res.Body), "m.read.private") {
		t.Errorf("bob's own receipt not kept privately: %s", res.Body)
	}

	admin.MustDo(t, http.MethodDelete, "/_synapse/admin/v1/users/"+u+"/shadow_ban", nil)
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/typing/%s", room, bob.UserID), map[string]any{"typing": true, "timeout": 30000})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", room, msg), map[string]any{})
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.topic", room), map[string]any{"topic": "real topic"})
	_, eph, tl = syncSince(t, alice, since, room)
	if !strings.Contains(eph, `"m.typing"`) || !strings.Contains(eph, `"m.receipt"`) || !strings.Contains(eph, string(bob.UserID)) || !strings.Contains(tl, "real topic") {
		t.Errorf("after the ban alice should see bob's typing, receipt and topic: ephemeral %s timeline %s", eph, tl)
	}
}

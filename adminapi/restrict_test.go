package adminapi_test

import (
	"net/http"
	"net/url"
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

package clientapi_test

import (
	"context"
	"net/http"
	"testing"

	"parley/internal/testserver"
)

func passwordAuth(user, password string, session any) map[string]any {
	a := map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": user}, "password": password}
	if session != nil {
		a["session"] = session
	}
	return a
}

func loginAgain(t *testing.T, srv *testserver.Server, user, password, device string) *testserver.Client {
	t.Helper()
	res := srv.Anon().MustDo(t, http.MethodPost, "login", map[string]any{"type": "m.login.password", "user": user, "password": password, "device_id": device})
	return &testserver.Client{S: srv, AccessToken: res.JSON["access_token"].(string), DeviceID: "", UserID: ""}
}

func TestDevices(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	phone := loginAgain(t, srv, "alice", "password", "PHONE")

	list := alice.MustDo(t, http.MethodGet, "devices", nil).JSON["devices"].([]any)
	if len(list) != 2 {
		t.Fatalf("devices: %v", list)
	}
	for _, d := range list {
		d := d.(map[string]any)
		if d["device_id"] == "" || d["last_seen_ts"] == nil || d["last_seen_ip"] != "127.0.0.1" {
			t.Fatalf("device entry: %v", d)
		}
	}
	alice.MustDo(t, http.MethodPut, "devices/PHONE", map[string]any{"display_name": "My phone"})
	if res := alice.MustDo(t, http.MethodGet, "devices/PHONE", nil); res.JSON["display_name"] != "My phone" {
		t.Fatalf("renamed: %s", res.Body)
	}
	for _, tc := range []struct {
		method, path string
		body         any
		code         int
		errcode      string
	}{
		{http.MethodGet, "devices/NOPE", nil, 404, "M_NOT_FOUND"},
		{http.MethodPut, "devices/NOPE", map[string]any{"display_name": "x"}, 404, "M_NOT_FOUND"},
		{http.MethodPut, "devices/PHONE", map[string]any{"display_name": 5}, 400, "M_BAD_JSON"},
		{http.MethodPost, "delete_devices", map[string]any{}, 400, "M_MISSING_PARAM"},
	} {
		if res := alice.Do(t, tc.method, tc.path, tc.body); res.Status != tc.code || res.ErrCode != tc.errcode {
			t.Fatalf("%s %s: %d %s", tc.method, tc.path, res.Status, res.Body)
		}
	}

	// DELETE with UIA: challenge, wrong password (401 M_FORBIDDEN with flows), then success.
	ch := alice.Do(t, http.MethodDelete, "devices/PHONE", map[string]any{})
	if ch.Status != 401 || ch.ErrCode != "" || ch.JSON["flows"] == nil {
		t.Fatalf("challenge: %d %s", ch.Status, ch.Body)
	}
	stages := ch.JSON["flows"].([]any)[0].(map[string]any)["stages"].([]any)
	if stages[0] != "m.login.password" {
		t.Fatalf("flows: %s", ch.Body)
	}
	res := alice.Do(t, http.MethodDelete, "devices/PHONE", map[string]any{"auth": passwordAuth("alice", "wrong", ch.JSON["session"])})
	if res.Status != 401 || res.ErrCode != "M_FORBIDDEN" || res.JSON["flows"] == nil || res.JSON["session"] != ch.JSON["session"] {
		t.Fatalf("wrong password: %d %s", res.Status, res.Body)
	}
	// Another user's password does not authenticate alice.
	srv.Register(t, "bob")
	res = alice.Do(t, http.MethodDelete, "devices/PHONE", map[string]any{"auth": passwordAuth("bob", "password", ch.JSON["session"])})
	if res.Status != 403 || res.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("other user's password: %d %s", res.Status, res.Body)
	}
	alice.MustDo(t, http.MethodDelete, "devices/PHONE", map[string]any{"auth": passwordAuth("@alice:hs1.test", "password", ch.JSON["session"])})
	if res := phone.Do(t, http.MethodGet, "account/whoami", nil); res.ErrCode != "M_UNKNOWN_TOKEN" {
		t.Fatalf("deleted device's token: %d %s", res.Status, res.Body)
	}

	// Deleting an unknown device succeeds once authenticated, as in Synapse.
	alice.MustDo(t, http.MethodDelete, "devices/NOPE", map[string]any{"auth": passwordAuth("alice", "password", nil)})

	// delete_devices in one step (the session is created on the fly).
	tablet := loginAgain(t, srv, "alice", "password", "TABLET")
	loginAgain(t, srv, "alice", "password", "TV")
	alice.MustDo(t, http.MethodPost, "delete_devices", map[string]any{"devices": []string{"TABLET", "TV", "UNKNOWN"}, "auth": passwordAuth("alice", "password", nil)})
	if res := tablet.Do(t, http.MethodGet, "account/whoami", nil); res.ErrCode != "M_UNKNOWN_TOKEN" {
		t.Fatalf("deleted tablet: %d %s", res.Status, res.Body)
	}
	if list := alice.MustDo(t, http.MethodGet, "devices", nil).JSON["devices"].([]any); len(list) != 1 {
		t.Fatalf("devices left: %v", list)
	}
}

func TestChangePassword(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	other := loginAgain(t, srv, "alice", "password", "OTHER")

	res := alice.Do(t, http.MethodPost, "account/password", map[string]any{"new_password": "newpass1", "auth": passwordAuth("alice", "wrong", nil)})
	if res.Status != 401 || res.ErrCode != "M_FORBIDDEN" || res.JSON["flows"] == nil {
		t.Fatalf("wrong password: %d %s", res.Status, res.Body)
	}
	alice.MustDo(t, http.MethodPost, "account/password", map[string]any{"new_password": "newpass1", "auth": passwordAuth("alice", "password", res.JSON["session"])})
	// The requesting device stays, the others are logged out.
	alice.MustDo(t, http.MethodGet, "account/whoami", nil)
	if res := other.Do(t, http.MethodGet, "account/whoami", nil); res.ErrCode != "M_UNKNOWN_TOKEN" {
		t.Fatalf("other device: %d %s", res.Status, res.Body)
	}
	if res := srv.Anon().Do(t, http.MethodPost, "login", passwordLogin(map[string]any{"type": "m.id.user", "user": "alice"}, "password")); res.Status != 403 {
		t.Fatalf("old password: %d %s", res.Status, res.Body)
	}
	kept := loginAgain(t, srv, "alice", "newpass1", "KEPT")
	// logout_devices: false keeps the other devices.
	alice.MustDo(t, http.MethodPost, "account/password", map[string]any{"new_password": "newpass2", "logout_devices": false, "auth": passwordAuth("alice", "newpass1", nil)})
	kept.MustDo(t, http.MethodGet, "account/whoami", nil)
	if res := alice.Do(t, http.MethodPost, "account/password", map[string]any{"auth": passwordAuth("alice", "newpass2", nil)}); res.Status != 400 || res.ErrCode != "M_MISSING_PARAM" {
		t.Fatalf("no new password: %d %s", res.Status, res.Body)
	}
}

func TestDeactivate(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	other := loginAgain(t, srv, "alice", "password", "OTHER")
	ch := alice.Do(t, http.MethodPost, "account/deactivate", map[string]any{})
	if ch.Status != 401 {
		t.Fatalf("challenge: %d %s", ch.Status, ch.Body)
	}
	res := alice.MustDo(t, http.MethodPost, "account/deactivate", map[string]any{"auth": passwordAuth("alice", "password", ch.JSON["session"])})
	if res.JSON["id_server_unbind_result"] != "success" {
		t.Fatalf("deactivate: %s", res.Body)
	}
	for _, c := range []*testserver.Client{alice, other} {
		if res := c.Do(t, http.MethodGet, "account/whoami", nil); res.Status != 401 || res.ErrCode != "M_UNKNOWN_TOKEN" {
			t.Fatalf("token after deactivation: %d %s", res.Status, res.Body)
		}
	}
	res = srv.Anon().Do(t, http.MethodPost, "login", passwordLogin(map[string]any{"type": "m.id.user", "user": "alice"}, "password"))
	if res.Status != 403 || res.ErrCode != "M_USER_DEACTIVATED" {
		t.Fatalf("login after deactivation: %d %s", res.Status, res.Body)
	}
	res = srv.Anon().Do(t, http.MethodPost, "register", dummyAuth(map[string]any{"username": "alice", "password": "password"}))
	if res.ErrCode != "M_USER_IN_USE" {
		t.Fatalf("re-register: %d %s", res.Status, res.Body)
	}
}

func TestThreePIDsAndCapabilities(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	if res := alice.MustDo(t, http.MethodGet, "account/3pid", nil); string(res.Body) != `{"threepids":[]}` {
		t.Fatalf("3pid: %s", res.Body)
	}
	caps := alice.MustDo(t, http.MethodGet, "capabilities", nil).JSON["capabilities"].(map[string]any)
	for name, want := range map[string]bool{"m.change_password": true, "m.set_displayname": true, "m.set_avatar_url": true, "m.3pid_changes": false, "m.get_login_token": true} {
		if got := caps[name].(map[string]any)["enabled"]; got != want {
			t.Fatalf("%s: %v", name, got)
		}
	}
	if res := srv.Anon().Do(t, http.MethodGet, "capabilities", nil); res.Status != 401 {
		t.Fatalf("capabilities without token: %d", res.Status)
	}
}

func TestDeviceLastSeen(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	ctx := context.Background()
	get := func() (float64, string) {
		d := alice.MustDo(t, http.MethodGet, testserver.Sprintf("devices/%s", alice.DeviceID), nil).JSON
		return d["last_seen_ts"].(float64), d["last_seen_ip"].(string)
	}
	created, _ := get()
	// Requests within the interval write nothing.
	for i := 0; i < 3; i++ {
		alice.MustDo(t, http.MethodGet, "account/whoami", nil)
	}
	if ts, _ := get(); ts != created {
		t.Fatalf("last_seen_ts rewritten within the interval: %v -> %v", created, ts)
	}
	// A stale record is refreshed by the next request.
	if err := srv.HS.Store.UpdateDeviceLastSeen(ctx, alice.UserID, alice.DeviceID, 1000, "10.1.2.3"); err != nil {
		t.Fatal(err)
	}
	alice.MustDo(t, http.MethodGet, "account/whoami", nil)
	ts, ip := get()
	if ts < created || ip != "127.0.0.1" {
		t.Fatalf("not refreshed: %v %s", ts, ip)
	}
	// And then not again within the interval, even if the row is stale.
	if err := srv.HS.Store.UpdateDeviceLastSeen(ctx, alice.UserID, alice.DeviceID, 1000, "10.1.2.3"); err != nil {
		t.Fatal(err)
	}
	alice.MustDo(t, http.MethodGet, "account/whoami", nil)
	if ts, _ := get(); ts != 1000 {
		t.Fatalf("written twice within the interval: %v", ts)
	}
}

// TestPushersFollowSessions: a pusher lives as long as the device that set it
// (SyTest "Pushers created with a different access token are deleted on password change").
func TestPushersFollowSessions(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	other := loginAgain(t, srv, "alice", "password", "OTHER")
	pusher := func(key string) map[string]any {
		return map[string]any{"pushkey": key, "kind": "http", "app_id": "com.example", "app_display_name": "App",
			"device_display_name": "Phone", "lang": "en", "data": map[string]any{"url": "https://push.example/_matrix/push/v1/notify"}}
	}
	keys := func() []string {
		var out []string
		for _, p := range alice.MustDo(t, http.MethodGet, "pushers", nil).JSON["pushers"].([]any) {
			out = append(out, p.(map[string]any)["pushkey"].(string))
		}
		return out
	}
	alice.MustDo(t, http.MethodPost, "pushers/set", pusher("mine"))
	other.MustDo(t, http.MethodPost, "pushers/set", pusher("theirs"))
	if k := keys(); len(k) != 2 {
		t.Fatalf("pushers: %v", k)
	}
	alice.MustDo(t, http.MethodPost, "account/password", map[string]any{"new_password": "newpass1", "auth": passwordAuth("alice", "password", nil)})
	if k := keys(); len(k) != 1 || k[0] != "mine" {
		t.Fatalf("after password change: %v", k)
	}
	third := loginAgain(t, srv, "alice", "newpass1", "THIRD")
	third.MustDo(t, http.MethodPost, "pushers/set", pusher("third"))
	third.MustDo(t, http.MethodPost, "logout", map[string]any{})
	if k := keys(); len(k) != 1 || k[0] != "mine" {
		t.Fatalf("after logout: %v", k)
	}
}

func TestDeactivateLeavesRooms(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	public := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	private := createRoom(t, alice, map[string]any{"preset": "private_chat", "invite": []string{string(bob.UserID)}})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", public), map[string]any{})
	bob.MustDo(t, http.MethodPost, "account/deactivate", map[string]any{"auth": passwordAuth("bob", "password", nil)})
	for _, room := range []string{public, private} {
		res := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.member/%s", room, bob.UserID), nil)
		if res.JSON["membership"] != "leave" {
			t.Fatalf("%s: bob's membership after deactivation: %s", room, res.Body)
		}
	}
}

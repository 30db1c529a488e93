package adminapi_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"parley/internal/testserver"
)

// TestDeprovisioning: deactivation by an admin revokes the token at once,
// removes the user from every room and from the user directory.
func TestDeprovisioning(t *testing.T) {
	srv := testserver.New(t)
	admin := srv.Register(t, "admin")
	makeAdmin(t, srv, admin)
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	priv := createRoom(t, admin, map[string]any{"preset": "private_chat"})
	admin.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/invite", priv), map[string]any{"user_id": bob.UserID})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", priv), map[string]any{})
	pub := createRoom(t, carol, map[string]any{"preset": "public_chat"})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", pub), map[string]any{})
	invited := createRoom(t, carol, map[string]any{"preset": "private_chat"})
	carol.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/invite", invited), map[string]any{"user_id": bob.UserID})
	send(t, bob, pub, "hello from bob")
	if res := carol.MustDo(t, http.MethodPost, "user_directory/search", map[string]any{"search_term": "bob"}); len(res.JSON["results"].([]any)) != 1 {
		t.Fatalf("bob not in directory before: %s", res.Body)
	}

	admin.MustDo(t, http.MethodPost, "/_synapse/admin/v1/deactivate/"+url.PathEscape(string(bob.UserID)), map[string]any{"erase": false})

	// The very next request with bob's token fails.
	if res := bob.Do(t, http.MethodGet, "account/whoami", nil); res.Status != http.StatusUnauthorized || res.ErrCode != "M_UNKNOWN_TOKEN" {
		t.Fatalf("token after deactivation: %d %s", res.Status, res.Body)
	}
	for _, room := range []string{priv, pub} {
		res := admin.MustDo(t, http.MethodGet, "/_synapse/admin/v1/rooms/"+url.PathEscape(room)+"/members", nil)
		for _, m := range res.JSON["members"].([]any) {
			if m == string(bob.UserID) {
				t.Fatalf("bob still in %s: %s", room, res.Body)
			}
		}
		st := carol.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.member/%s", room, bob.UserID), nil)
		if room == pub && (st.Status != 200 || st.JSON["membership"] != "leave") {
			t.Fatalf("bob's membership in %s: %s", room, st.Body)
		}
	}
	if st := carol.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.member/%s", invited, bob.UserID), nil); st.JSON["membership"] != "leave" {
		t.Fatalf("invite not rejected: %s", st.Body)
	}
	if res := admin.MustDo(t, http.MethodGet, "/_synapse/admin/v1/users/"+url.PathEscape(string(bob.UserID))+"/joined_rooms", nil); res.JSON["total"].(float64) != 0 {
		t.Fatalf("joined rooms after: %s", res.Body)
	}
	if res := carol.MustDo(t, http.MethodPost, "user_directory/search", map[string]any{"search_term": "bob"}); len(res.JSON["results"].([]any)) != 0 {
		t.Fatalf("bob still in directory: %s", res.Body)
	}
	res := srv.Anon().Do(t, http.MethodPost, "login", map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "bob"}, "password": "password"})
	if res.Status != http.StatusForbidden || res.ErrCode != "M_USER_DEACTIVATED" {
		t.Fatalf("login after deactivation: %d %s", res.Status, res.Body)
	}
	if res := admin.MustDo(t, http.MethodGet, "/_synapse/admin/v2/users/"+url.PathEscape(string(bob.UserID)), nil); res.JSON["deactivated"] != true {
		t.Fatalf("user not shown deactivated: %s", res.Body)
	}
	// The rooms still work.
	send(t, carol, pub, "still alive")
}

func auditEntries(t *testing.T, admin *testserver.Client, query string) []map[string]any {
	t.Helper()
	res := admin.MustDo(t, http.MethodGet, "/_parley/admin/v1/audit?limit=1000&"+query, nil)
	var out []map[string]any
	for _, e := range res.JSON["entries"].([]any) {
		out = append(out, e.(map[string]any))
	}
	return out
}

func TestAuditLog(t *testing.T) {
	srv := testserver.New(t)
	start := time.Now().UnixMilli()
	admin := srv.Register(t, "admin")
	makeAdmin(t, srv, admin)
	bob := srv.Register(t, "bob")
	login := func(pw, device string) int {
		body := map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "bob"}, "password": pw}
		if device != "" {
			body["device_id"] = device
		}
		return srv.Anon().Do(t, http.MethodPost, "login", body).Status
	}
	if login("wrong", "") != 403 || login("password", "DEV1") != 200 || login("password", "DEV1") != 200 {
		t.Fatal("logins")
	}
	room := createRoom(t, bob, map[string]any{"preset": "private_chat"})
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.join_rules/", room), map[string]any{"join_rule": "public"})
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.power_levels/", room), map[string]any{"users": map[string]any{string(bob.UserID): 100}})
	admin.MustDo(t, http.MethodPost, "/_synapse/admin/v1/reset_password/"+url.PathEscape(string(bob.UserID)), map[string]any{"new_password": "pw2"})
	carol := srv.Register(t, "carol")
	carol.MustDo(t, http.MethodPost, "account/password", map[string]any{"new_password": "pw3",
		"auth": map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "carol"}, "password": "password"}})
	dave := srv.Register(t, "dave")
	dave.MustDo(t, http.MethodPost, "account/deactivate", map[string]any{
		"auth": map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "dave"}, "password": "password"}})
	admin.MustDo(t, http.MethodPost, "/_synapse/admin/v1/deactivate/"+url.PathEscape(string(carol.UserID)), map[string]any{})

	up := admin.MustDo(t, http.MethodPost, "/_matrix/media/v3/upload", []byte("evidence file"))
	mediaID := strings.TrimPrefix(up.JSON["content_uri"].(string), "mxc://hs1.test/")
	admin.MustDo(t, http.MethodPost, "/_synapse/admin/v1/media/quarantine/hs1.test/"+mediaID, map[string]any{})
	admin.MustDo(t, http.MethodPost, "/_synapse/admin/v1/registration_tokens/new", map[string]any{})
	count := func(query string) int { return len(auditEntries(t, admin, query)) }
	if q := auditEntries(t, admin, "action=media_quarantine"); len(q) != 1 || !strings.Contains(q[0]["target"].(string), mediaID) {
		t.Errorf("media quarantine audit: %v", q)
	}
	bobQ := "user=" + url.QueryEscape(string(bob.UserID))
	for _, tc := range []struct {
		query string
		want  int
	}{
		{bobQ + "&action=login_failure", 1},
		{bobQ + "&action=login", 2},
		{bobQ + "&action=new_device", 1},
		{bobQ + "&action=join_rules_change", 2}, // room creation and the change
		{bobQ + "&action=power_levels_change", 2},
		{"action=password_change", 2}, // admin reset of bob's and carol's own change
		{"user=" + url.QueryEscape(string(carol.UserID)) + "&action=password_change", 1},
		{"action=deactivation", 2},
	} {
		if got := count(tc.query); got != tc.want {
			t.Errorf("%s: %d entries, want %d: %v", tc.query, got, tc.want, auditEntries(t, admin, tc.query))
		}
	}
	calls := map[string]int{}
	for _, e := range auditEntries(t, admin, "user="+url.QueryEscape(string(admin.UserID))+"&action=admin_api") {
		ep, _ := e["details"].(map[string]any)["endpoint"].(string)
		calls[ep]++
	}
	others := 0
	for _, e := range auditEntries(t, admin, "action=admin_api") {
		if e["target"] == "/_synapse/admin/v1/registration_tokens/new" {
			others++
		}
	}
	if others != 1 {
		t.Errorf("registration token creation audited %d times", others)
	}
	if calls["admin_reset_password"] != 1 || calls["admin_deactivate"] != 1 || calls["admin_audit"] == 0 {
		t.Errorf("admin API calls audited: %v", calls)
	}
	fail := auditEntries(t, admin, bobQ+"&action=login_failure")[0]
	if fail["ip"] == "" {
		t.Errorf("login failure without ip: %v", fail)
	}
	if ok := auditEntries(t, admin, bobQ+"&action=new_device")[0]; ok["device_id"] != "DEV1" {
		t.Errorf("new device entry: %v", ok)
	}
	// Time filters.
	if n := count("from=" + strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)); n != 0 {
		t.Errorf("from in the future: %d", n)
	}
	if n := count("to=" + strconv.FormatInt(start-1, 10)); n != 0 {
		t.Errorf("to before start: %d", n)
	}
	if n := count("from=" + strconv.FormatInt(start, 10) + "&action=deactivation"); n != 2 {
		t.Errorf("from start: %d", n)
	}
	if res := admin.Do(t, http.MethodGet, "/_parley/admin/v1/audit?from=x", nil); res.Status != 400 || res.ErrCode != "M_INVALID_PARAM" {
		t.Errorf("bad from: %d", res.Status)
	}
	// No API edits the log.
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPost} {
		if res := admin.Do(t, m, "/_parley/admin/v1/audit", map[string]any{}); res.Status/100 != 4 {
			t.Errorf("%s audit: %d", m, res.Status)
		}
	}
	if res := bob.Do(t, http.MethodGet, "/_parley/admin/v1/audit", nil); res.Status != 401 && res.Status != 403 {
		t.Errorf("non-admin audit: %d", res.Status)
	}
}

// TestEraseForLaterJoiners: an erased user's messages stay visible to members
// who saw them and are served redacted to users who join later.
func TestEraseForLaterJoiners(t *testing.T) {
	srv := testserver.New(t)
	admin := srv.Register(t, "admin")
	makeAdmin(t, srv, admin)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	msg := send(t, bob, room, "personal data")
	admin.MustDo(t, http.MethodPost, "/_synapse/admin/v1/deactivate/"+url.PathEscape(string(bob.UserID)), map[string]any{"erase": true})
	carol.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	body := func(c *testserver.Client) any {
		ev := c.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, msg), nil)
		return ev.JSON["content"].(map[string]any)["body"]
	}
	if body(alice) != "personal data" {
		t.Fatal("a member who saw the message lost it")
	}
	if b := body(carol); b != nil {
		t.Fatalf("later joiner sees erased content %v", b)
	}
	res := carol.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room)+"?dir=b&limit=50", nil)
	for _, e := range res.JSON["chunk"].([]any) {
		m := e.(map[string]any)
		if m["event_id"] == msg && m["content"].(map[string]any)["body"] != nil {
			t.Fatalf("later joiner sees erased content in /messages: %v", m)
		}
	}
	check := func(c *testserver.Client, wantBody bool) {
		sync := c.MustDo(t, http.MethodGet, "sync", nil)
		tl := sync.JSON["rooms"].(map[string]any)["join"].(map[string]any)[room].(map[string]any)["timeline"].(map[string]any)["events"].([]any)
		for _, e := range tl {
			m := e.(map[string]any)
			if m["event_id"] == msg {
				if has := m["content"].(map[string]any)["body"] != nil; has != wantBody {
					t.Fatalf("%s sync: body present %v, want %v", c.UserID, has, wantBody)
				}
				return
			}
		}
		t.Fatalf("%s sync lacks the message: %s", c.UserID, sync.Body)
	}
	check(carol, false)
	check(alice, true)
}

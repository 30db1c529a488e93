package adminapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"parley/internal/testserver"
)

func makeAdmin(t *testing.T, srv *testserver.Server, c *testserver.Client) {
	t.Helper()
	if err := srv.HS.Store.SetAccountAdmin(context.Background(), c.UserID, true); err != nil {
		t.Fatal(err)
	}
}

func createRoom(t *testing.T, c *testserver.Client, body any) string {
	t.Helper()
	return c.MustDo(t, http.MethodPost, "createRoom", body).JSON["room_id"].(string)
}

var txn int

func send(t *testing.T, c *testserver.Client, room, text string) string {
	t.Helper()
	txn++
	return c.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/%s", room, fmt.Sprint(txn)),
		map[string]any{"msgtype": "m.text", "body": text}).JSON["event_id"].(string)
}

// TestAdminEndpointsNeedAdmin calls every admin endpoint as a non-admin (403
// M_FORBIDDEN) and as an admin (success).
func TestAdminEndpointsNeedAdmin(t *testing.T) {
	srv := testserver.New(t)
	admin := srv.Register(t, "admin")
	makeAdmin(t, srv, admin)
	user := srv.Register(t, "user")
	target := srv.Register(t, "target")
	room := createRoom(t, target, map[string]any{"preset": "public_chat", "name": "Target room"})
	ev := send(t, target, room, "report me")
	user.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	user.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/report/%s", room, ev), map[string]any{"reason": "spam", "score": -100})

	admin.MustDo(t, http.MethodPost, "/_synapse/admin/v1/registration_tokens/new", map[string]any{"token": "tok1", "uses_allowed": 1})
	admin.MustDo(t, http.MethodPost, "/_synapse/admin/v1/registration_tokens/new", map[string]any{"token": "tok2"})
	u := url.PathEscape(string(target.UserID))
	r := url.PathEscape(room)
	cases := []struct {
		method, path string
		body         any
		want         int
		check        func(t *testing.T, res *testserver.Response)
	}{
		{"GET", "/_synapse/admin/v2/users", nil, 200, func(t *testing.T, res *testserver.Response) {
			if res.JSON["total"].(float64) != 3 {
				t.Errorf("total: %s", res.Body)
			}
		}},
		{"GET", "/_synapse/admin/v2/users?name=targ", nil, 200, func(t *testing.T, res *testserver.Response) {
			us := res.JSON["users"].([]any)
			if len(us) != 1 || us[0].(map[string]any)["name"] != string(target.UserID) {
				t.Errorf("name filter: %s", res.Body)
			}
		}},
		{"GET", "/_synapse/admin/v2/users/" + u, nil, 200, func(t *testing.T, res *testserver.Response) {
			if res.JSON["name"] != string(target.UserID) || res.JSON["admin"] != false {
				t.Errorf("get user: %s", res.Body)
			}
		}},
		{"GET", "/_synapse/admin/v2/users/" + u + "/devices", nil, 200, func(t *testing.T, res *testserver.Response) {
			if res.JSON["total"].(float64) != 1 {
				t.Errorf("devices: %s", res.Body)
			}
		}},
		{"GET", "/_matrix/client/v3/admin/whois/" + u, nil, 200, func(t *testing.T, res *testserver.Response) {
			if _, ok := res.JSON["devices"].(map[string]any)[string(target.DeviceID)]; !ok || res.JSON["user_id"] != string(target.UserID) {
				t.Errorf("client-server whois: %s", res.Body)
			}
		}},
		{"GET", "/_synapse/admin/v1/whois/" + u, nil, 200, func(t *testing.T, res *testserver.Response) {
			if _, ok := res.JSON["devices"].(map[string]any)[string(target.DeviceID)]; !ok {
				t.Errorf("whois: %s", res.Body)
			}
		}},
		{"GET", "/_synapse/admin/v1/users/" + u + "/joined_rooms", nil, 200, func(t *testing.T, res *testserver.Response) {
			if res.JSON["total"].(float64) != 1 || res.JSON["joined_rooms"].([]any)[0] != room {
				t.Errorf("joined rooms: %s", res.Body)
			}
		}},
		{"GET", "/_synapse/admin/v1/rooms", nil, 200, func(t *testing.T, res *testserver.Response) {
			rs := res.JSON["rooms"].([]any)
			if res.JSON["total_rooms"].(float64) != 1 || rs[0].(map[string]any)["name"] != "Target room" || rs[0].(map[string]any)["joined_members"].(float64) != 2 {
				t.Errorf("rooms: %s", res.Body)
			}
		}},
		{"GET", "/_synapse/admin/v1/rooms?search_term=nomatch", nil, 200, func(t *testing.T, res *testserver.Response) {
			if res.JSON["total_rooms"].(float64) != 0 {
				t.Errorf("room search: %s", res.Body)
			}
		}},
		{"GET", "/_synapse/admin/v1/rooms/" + r, nil, 200, func(t *testing.T, res *testserver.Response) {
			if res.JSON["join_rules"] != "public" || res.JSON["creator"] != string(target.UserID) {
				t.Errorf("room: %s", res.Body)
			}
		}},
		{"GET", "/_synapse/admin/v1/rooms/" + r + "/members", nil, 200, func(t *testing.T, res *testserver.Response) {
			if res.JSON["total"].(float64) != 2 {
				t.Errorf("members: %s", res.Body)
			}
		}},
		{"GET", "/_synapse/admin/v1/rooms/" + r + "/state", nil, 200, func(t *testing.T, res *testserver.Response) {
			if len(res.JSON["state"].([]any)) < 5 {
				t.Errorf("state: %s", res.Body)
			}
		}},
		{"GET", "/_synapse/admin/v1/event_reports", nil, 200, func(t *testing.T, res *testserver.Response) {
			reps := res.JSON["event_reports"].([]any)
			if len(reps) != 1 || reps[0].(map[string]any)["event_id"] != ev || reps[0].(map[string]any)["sender"] != string(target.UserID) {
				t.Errorf("reports: %s", res.Body)
			}
		}},
		{"GET", "/_synapse/admin/v1/event_reports/1", nil, 200, func(t *testing.T, res *testserver.Response) {
			if res.JSON["reason"] != "spam" || res.JSON["event_json"] == nil {
				t.Errorf("report: %s", res.Body)
			}
		}},
		{"GET", "/_parley/admin/v1/audit", nil, 200, func(t *testing.T, res *testserver.Response) {
			if len(res.JSON["entries"].([]any)) == 0 {
				t.Errorf("audit: %s", res.Body)
			}
		}},
		{"POST", "/_synapse/admin/v1/reset_password/" + u, map[string]any{"new_password": "newpass", "logout_devices": false}, 200, nil},
		{"PUT", "/_synapse/admin/v2/users/" + url.PathEscape("@created:hs1.test"), map[string]any{"password": "pw", "displayname": "Created", "admin": true}, 201, func(t *testing.T, res *testserver.Response) {
			if res.JSON["displayname"] != "Created" || res.JSON["admin"] != true {
				t.Errorf("create: %s", res.Body)
			}
		}},
		{"PUT", "/_synapse/admin/v2/users/" + u, map[string]any{"displayname": "Renamed"}, 200, func(t *testing.T, res *testserver.Response) {
			if res.JSON["displayname"] != "Renamed" {
				t.Errorf("modify: %s", res.Body)
			}
		}},
		{"POST", "/_synapse/admin/v1/users/" + u + "/login", map[string]any{}, 200, func(t *testing.T, res *testserver.Response) {
			tok, _ := res.JSON["access_token"].(string)
			puppet := &testserver.Client{S: srv, AccessToken: tok}
			if who := puppet.MustDo(t, http.MethodGet, "account/whoami", nil); who.JSON["user_id"] != string(target.UserID) {
				t.Errorf("login as: %s", who.Body)
			}
		}},
		{"DELETE", "/_synapse/admin/v1/event_reports/1", nil, 200, nil},
		{"GET", "/_synapse/admin/v1/background_updates/status", nil, 200, nil},
		{"POST", "/_parley/admin/v1/retention/purge", map[string]any{}, 200, nil},
		{"GET", "/_parley/admin/v1/jobs", nil, 200, func(t *testing.T, res *testserver.Response) {
			if ret, ok := res.JSON["retention"].(map[string]any); !ok || ret["last_run"] == nil {
				t.Errorf("jobs: %s", res.Body)
			}
		}},
		{"GET", "/_synapse/admin/v1/registration_tokens", nil, 200, func(t *testing.T, res *testserver.Response) {
			if len(res.JSON["registration_tokens"].([]any)) != 2 {
				t.Errorf("tokens: %s", res.Body)
			}
		}},
		{"PUT", "/_synapse/admin/v1/registration_tokens/tok1", map[string]any{"uses_allowed": 0}, 200, func(t *testing.T, res *testserver.Response) {
			if res.JSON["uses_allowed"].(float64) != 0 {
				t.Errorf("token update: %s", res.Body)
			}
		}},
		{"GET", "/_synapse/admin/v1/registration_tokens?valid=false", nil, 200, func(t *testing.T, res *testserver.Response) {
			ts := res.JSON["registration_tokens"].([]any)
			if len(ts) != 1 || ts[0].(map[string]any)["token"] != "tok1" {
				t.Errorf("invalid tokens: %s", res.Body)
			}
		}},
		{"DELETE", "/_synapse/admin/v1/registration_tokens/tok2", nil, 200, nil},
		{"GET", "/_synapse/admin/v1/rooms/" + r + "/messages?limit=2", nil, 200, func(t *testing.T, res *testserver.Response) {
			chunk := res.JSON["chunk"].([]any)
			if len(chunk) != 2 || res.JSON["end"] == nil {
				t.Errorf("messages: %s", res.Body)
				return
			}
			next := admin.MustDo(t, "GET", "/_synapse/admin/v1/rooms/"+r+"/messages?limit=100&from="+res.JSON["end"].(string), nil)
			for _, e := range next.JSON["chunk"].([]any) {
				if e.(map[string]any)["event_id"] == chunk[0].(map[string]any)["event_id"] {
					t.Errorf("page 2 repeats page 1")
				}
			}
			if len(next.JSON["chunk"].([]any)) < 5 {
				t.Errorf("page 2: %s", next.Body)
			}
		}},
		{"GET", "/_synapse/admin/v1/users/" + u + "/media", nil, 200, func(t *testing.T, res *testserver.Response) {
			if res.JSON["total"] != float64(0) || res.JSON["media"] == nil {
				t.Errorf("user media: %s", res.Body)
			}
		}},
		{"DELETE", "/_synapse/admin/v1/users/" + u + "/media", nil, 200, nil},
		{"POST", fmt.Sprintf("/_synapse/admin/v1/media/delete?before_ts=%d", time.Now().UnixMilli()), map[string]any{}, 200, func(t *testing.T, res *testserver.Response) {
			if res.JSON["total"] != float64(0) {
				t.Errorf("media delete: %s", res.Body)
			}
		}},
		{"POST", "/_synapse/admin/v1/deactivate/" + url.PathEscape("@created:hs1.test"), map[string]any{"erase": true}, 200, nil},
	}
	for _, tc := range cases {
		name := tc.method + " " + tc.path
		res := user.Do(t, tc.method, tc.path, tc.body)
		if res.Status != http.StatusForbidden || res.ErrCode != "M_FORBIDDEN" {
			t.Errorf("%s as non-admin: %d %s", name, res.Status, res.Body)
		}
		res = admin.Do(t, tc.method, tc.path, tc.body)
		if res.Status != tc.want {
			t.Errorf("%s as admin: %d %s", name, res.Status, res.Body)
			continue
		}
		if tc.check != nil {
			tc.check(t, res)
		}
	}
	if res := admin.Do(t, "DELETE", "/_synapse/admin/v1/registration_tokens/tok2", nil); res.Status != 404 {
		t.Errorf("deleted token: %d", res.Status)
	}
	if res := admin.Do(t, "PUT", "/_synapse/admin/v1/registration_tokens/tok1", map[string]any{"uses_allowed": -1}); res.Status != 400 || res.ErrCode != "M_INVALID_PARAM" {
		t.Errorf("bad token update: %d", res.Status)
	}
	if res := admin.Do(t, "GET", "/_synapse/admin/v1/event_reports/1", nil); res.Status != 404 {
		t.Errorf("deleted report: %d", res.Status)
	}
	if res := admin.Do(t, "GET", "/_synapse/admin/v2/users/"+url.PathEscape("@x:other.test"), nil); res.Status != 400 {
		t.Errorf("remote user: %d", res.Status)
	}
	if res := admin.Do(t, "GET", "/_synapse/admin/v2/users/"+url.PathEscape("@nobody:hs1.test"), nil); res.Status != 404 || res.ErrCode != "M_NOT_FOUND" {
		t.Errorf("unknown user: %d %s", res.Status, res.Body)
	}
	if res := admin.Do(t, "GET", "/_synapse/admin/v1/rooms/"+url.PathEscape("!nope:hs1.test"), nil); res.Status != 404 {
		t.Errorf("unknown room: %d", res.Status)
	}
	if res := admin.Do(t, "POST", "/_synapse/admin/v1/users/"+url.PathEscape(string(admin.UserID))+"/login", map[string]any{}); res.Status != 400 {
		t.Errorf("login as self: %d", res.Status)
	}
	if res := srv.Anon().Do(t, "GET", "/_synapse/admin/v1/server_version", nil); res.Status != 200 || res.JSON["server_version"] == "" {
		t.Errorf("server_version: %d %s", res.Status, res.Body)
	}
	if res := srv.Anon().Do(t, "GET", "/_synapse/admin/v2/users", nil); res.Status != 401 {
		t.Errorf("no token: %d", res.Status)
	}
	// The password reset took effect.
	res := srv.Anon().Do(t, http.MethodPost, "login", map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "target"}, "password": "newpass"})
	if res.Status != 200 {
		t.Errorf("login with reset password: %d %s", res.Status, res.Body)
	}
}

func TestReports(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	eve := srv.Register(t, "eve")
	room := createRoom(t, alice, map[string]any{"preset": "private_chat"})
	ev := send(t, alice, room, "hello")
	for _, tc := range []struct {
		c    *testserver.Client
		path string
		body any
		want int
		err  string
	}{
		{eve, testserver.Sprintf("rooms/%s/report/%s", room, ev), map[string]any{"reason": "x"}, 404, "M_NOT_FOUND"},
		{alice, testserver.Sprintf("rooms/%s/report/%s", room, "$nope"), map[string]any{}, 404, "M_NOT_FOUND"},
		{alice, testserver.Sprintf("rooms/%s/report/%s", room, ev), map[string]any{"score": 5}, 400, "M_INVALID_PARAM"},
		{alice, testserver.Sprintf("rooms/%s/report/%s", room, ev), `{`, 400, "M_NOT_JSON"},
		{alice, testserver.Sprintf("rooms/%s/report/%s", room, ev), map[string]any{"reason": "ok"}, 200, ""},
		{eve, testserver.Sprintf("rooms/%s/report", room), map[string]any{"reason": "bad room"}, 200, ""},
		{eve, testserver.Sprintf("rooms/%s/report", "!nope:hs1.test"), map[string]any{"reason": "x"}, 404, "M_NOT_FOUND"},
		{eve, testserver.Sprintf("users/%s/report", alice.UserID), map[string]any{"reason": "rude"}, 200, ""},
		{eve, testserver.Sprintf("users/%s/report", "@ghost:hs1.test"), map[string]any{"reason": "x"}, 404, "M_NOT_FOUND"},
	} {
		res := tc.c.Do(t, http.MethodPost, tc.path, tc.body)
		if res.Status != tc.want || res.ErrCode != tc.err {
			t.Errorf("%s: %d %s, want %d %s", tc.path, res.Status, res.Body, tc.want, tc.err)
		}
	}
	admin := srv.Register(t, "admin")
	makeAdmin(t, srv, admin)
	res := admin.MustDo(t, "GET", "/_synapse/admin/v1/event_reports?dir=f", nil)
	reps := res.JSON["event_reports"].([]any)
	if len(reps) != 3 || !strings.Contains(string(res.Body), `"kind":"user"`) {
		t.Fatalf("reports: %s", res.Body)
	}
}

// TestWhoisSelf: the client-server API's whois lets a user look up
// themselves, with their devices' last connection.
func TestWhoisSelf(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	alice.MustDo(t, http.MethodGet, "account/whoami", nil) // a request that records the connection
	res := alice.MustDo(t, http.MethodGet, "/_matrix/client/v3/admin/whois/"+url.PathEscape(string(alice.UserID)), nil)
	d, _ := res.JSON["devices"].(map[string]any)[string(alice.DeviceID)].(map[string]any)
	sessions, _ := d["sessions"].([]any)
	if res.JSON["user_id"] != string(alice.UserID) || len(sessions) != 1 {
		t.Fatalf("whois self: %s", res.Body)
	}
}

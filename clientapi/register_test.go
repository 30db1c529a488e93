package clientapi_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/internal/config"
	"parley/internal/testserver"
	"parley/storage"
)

func dummyAuth(extra map[string]any) map[string]any {
	body := map[string]any{"auth": map[string]any{"type": "m.login.dummy"}}
	for k, v := range extra {
		body[k] = v
	}
	return body
}

func TestRegisterErrors(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.Registration.MinPasswordLength = 8 })
	srv.Register(t, "taken") // password "password" is 8 long
	anon := srv.Anon()
	tests := []struct {
		name     string
		query    string
		body     any
		wantCode int
		wantErr  string
	}{
		{"not JSON", "", "{", 400, "M_NOT_JSON"},
		{"array", "", "[]", 400, "M_BAD_JSON"},
		{"username wrong type", "", map[string]any{"username": 5}, 400, "M_BAD_JSON"},
		{"reserved char", "", dummyAuth(map[string]any{"username": "al:ice", "password": "password"}), 400, "M_INVALID_USERNAME"},
		{"space", "", dummyAuth(map[string]any{"username": "al ice", "password": "password"}), 400, "M_INVALID_USERNAME"},
		{"numeric", "", dummyAuth(map[string]any{"username": "12345", "password": "password"}), 400, "M_INVALID_USERNAME"},
		{"underscore", "", dummyAuth(map[string]any{"username": "_bridge", "password": "password"}), 400, "M_INVALID_USERNAME"},
		{"too long", "", dummyAuth(map[string]any{"username": strings.Repeat("a", 250), "password": "password"}), 400, "M_INVALID_USERNAME"},
		{"in use", "", dummyAuth(map[string]any{"username": "taken", "password": "password"}), 400, "M_USER_IN_USE"},
		{"weak password", "", dummyAuth(map[string]any{"username": "bob", "password": "short"}), 400, "M_WEAK_PASSWORD"},
		{"missing password", "", dummyAuth(map[string]any{"username": "bob"}), 400, "M_MISSING_PARAM"},
		{"guest disabled", "?kind=guest", map[string]any{}, 403, "M_GUEST_ACCESS_FORBIDDEN"},
		{"bad kind", "?kind=robot", map[string]any{}, 400, "M_INVALID_PARAM"},
		{"unknown session", "", map[string]any{"username": "bob", "password": "password", "auth": map[string]any{"type": "m.login.dummy", "session": "nope"}}, 400, "M_UNKNOWN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := anon.Do(t, http.MethodPost, "register"+tt.query, tt.body)
			if res.Status != tt.wantCode || res.ErrCode != tt.wantErr {
				t.Fatalf("got %d %q, want %d %q: %s", res.Status, res.ErrCode, tt.wantCode, tt.wantErr, res.Body)
			}
		})
	}

	// Registration disabled.
	closed := testserver.New(t, func(c *config.Config) { c.Registration.Enabled = false })
	res := closed.Anon().Do(t, http.MethodPost, "register", dummyAuth(map[string]any{"username": "x", "password": "password"}))
	if res.Status != 403 || res.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("disabled: %d %s", res.Status, res.Body)
	}
}

func TestRegisterUIAFlow(t *testing.T) {
	srv := testserver.New(t)
	anon := srv.Anon()
	// First request: the challenge, exactly per spec (no errcode).
	res := anon.Do(t, http.MethodPost, "register", map[string]any{"username": "carol", "password": "secret12"})
	if res.Status != 401 || res.ErrCode != "" {
		t.Fatalf("challenge: %d %s", res.Status, res.Body)
	}
	session, _ := res.JSON["session"].(string)
	flows, _ := res.JSON["flows"].([]any)
	if session == "" || len(flows) != 1 || res.JSON["params"] == nil || res.JSON["completed"] == nil {
		t.Fatalf("challenge body: %s", res.Body)
	}
	stages := flows[0].(map[string]any)["stages"].([]any)
	if len(stages) != 1 || stages[0] != "m.login.dummy" {
		t.Fatalf("stages: %s", res.Body)
	}
	// Completing the stage in that session registers, with the extra options.
	res = anon.MustDo(t, http.MethodPost, "register", map[string]any{
		"username": "carol", "password": "secret12", "device_id": "MYDEVICE", "initial_device_display_name": "Phone",
		"auth": map[string]any{"type": "m.login.dummy", "session": session},
	})
	if res.JSON["user_id"] != "@carol:hs1.test" || res.JSON["device_id"] != "MYDEVICE" || res.JSON["access_token"] == nil {
		t.Fatalf("register: %s", res.Body)
	}
	carol := &testserver.Client{S: srv, AccessToken: res.JSON["access_token"].(string)}
	dev := carol.MustDo(t, http.MethodGet, "devices/MYDEVICE", nil)
	if dev.JSON["display_name"] != "Phone" {
		t.Fatalf("device: %s", dev.Body)
	}
	// A retry in the completed session is answered for the same user, with a new token.
	res = anon.MustDo(t, http.MethodPost, "register", map[string]any{
		"username": "carol", "password": "secret12", "auth": map[string]any{"type": "m.login.dummy", "session": session},
	})
	if res.JSON["user_id"] != "@carol:hs1.test" || res.JSON["access_token"] == carol.AccessToken {
		t.Fatalf("retried registration: %s", res.Body)
	}
	// Parameters of the first request are remembered: the second may send only auth.
	ch := anon.Do(t, http.MethodPost, "register", map[string]any{"username": "rémy", "password": "übers3kr1t", "device_id": "xyzzy", "initial_device_display_name": "display_name"})
	if ch.ErrCode != "M_INVALID_USERNAME" {
		t.Fatalf("non-ascii username: %d %s", ch.Status, ch.Body)
	}
	ch = anon.Do(t, http.MethodPost, "register", map[string]any{"username": "remy", "password": "übers3kr1t", "device_id": "xyzzy", "initial_device_display_name": "display_name"})
	res = anon.MustDo(t, http.MethodPost, "register", map[string]any{"auth": map[string]any{"type": "m.login.dummy", "session": ch.JSON["session"]}})
	if res.JSON["user_id"] != "@remy:hs1.test" || res.JSON["device_id"] != "xyzzy" {
		t.Fatalf("remembered params: %s", res.Body)
	}
	remy := &testserver.Client{S: srv, AccessToken: res.JSON["access_token"].(string)}
	if dev := remy.MustDo(t, http.MethodGet, "devices/xyzzy", nil); dev.JSON["display_name"] != "display_name" {
		t.Fatalf("remembered display name: %s", dev.Body)
	}
	anon.MustDo(t, http.MethodPost, "login", map[string]any{"type": "m.login.password", "user": "remy", "password": "übers3kr1t"})
	// inhibit_login remembered too.
	ch = anon.Do(t, http.MethodPost, "register", map[string]any{"username": "ivy", "password": "secret12", "inhibit_login": true})
	res = anon.MustDo(t, http.MethodPost, "register", map[string]any{"auth": map[string]any{"type": "m.login.dummy", "session": ch.JSON["session"]}})
	if res.JSON["user_id"] != "@ivy:hs1.test" || res.JSON["access_token"] != nil {
		t.Fatalf("remembered inhibit_login: %s", res.Body)
	}
	// inhibit_login: no token, no device.
	res = anon.MustDo(t, http.MethodPost, "register", dummyAuth(map[string]any{"username": "dave", "password": "secret12", "inhibit_login": true}))
	if res.JSON["access_token"] != nil || res.JSON["user_id"] != "@dave:hs1.test" {
		t.Fatalf("inhibit_login: %s", res.Body)
	}
	// The default display name is the localpart.
	res = anon.MustDo(t, http.MethodGet, "profile/@dave:hs1.test/displayname", nil)
	if res.JSON["displayname"] != "dave" {
		t.Fatalf("displayname: %s", res.Body)
	}
	// Capitals are folded to lower case, as Synapse does.
	res = anon.MustDo(t, http.MethodPost, "register", dummyAuth(map[string]any{"username": "FrAnK", "password": "secret12"}))
	if res.JSON["user_id"] != "@frank:hs1.test" {
		t.Fatalf("downcased: %s", res.Body)
	}
	res = anon.Do(t, http.MethodPost, "register", dummyAuth(map[string]any{"username": "FRANK", "password": "secret12"}))
	if res.ErrCode != "M_USER_IN_USE" {
		t.Fatalf("downcased duplicate: %d %s", res.Status, res.Body)
	}
	// No username: a generated one.
	res = anon.MustDo(t, http.MethodPost, "register", dummyAuth(map[string]any{"password": "secret12"}))
	if !strings.HasSuffix(res.JSON["user_id"].(string), ":hs1.test") {
		t.Fatalf("generated: %s", res.Body)
	}
	// A session from another operation cannot be reused here.
	alice := srv.Register(t, "alice")
	ch = alice.Do(t, http.MethodPost, "delete_devices", map[string]any{"devices": []string{}})
	res = anon.Do(t, http.MethodPost, "register", map[string]any{"username": "eve", "password": "secret12",
		"auth": map[string]any{"type": "m.login.dummy", "session": ch.JSON["session"]}})
	if res.Status != 403 || res.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("cross-op session: %d %s", res.Status, res.Body)
	}
}

func TestRegisterAvailable(t *testing.T) {
	srv := testserver.New(t)
	srv.Register(t, "alice")
	anon := srv.Anon()
	if res := anon.MustDo(t, http.MethodGet, "register/available?username=bob", nil); res.JSON["available"] != true {
		t.Fatalf("available: %s", res.Body)
	}
	for q, want := range map[string]string{"alice": "M_USER_IN_USE", "Bob": "M_INVALID_USERNAME", "": "M_MISSING_PARAM"} {
		res := anon.Do(t, http.MethodGet, "register/available?username="+q, nil)
		if res.Status != 400 || res.ErrCode != want {
			t.Fatalf("%q: %d %s", q, res.Status, res.Body)
		}
	}
}

func TestRegistrationTokens(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.Registration.RequireToken = true })
	ctx := context.Background()
	one := 1
	past := time.Now().Add(-time.Hour).UnixMilli()
	for _, tok := range []storage.RegistrationToken{{Token: "once", UsesAllowed: &one}, {Token: "old", ExpiryTime: &past}} {
		if err := srv.HS.Store.CreateRegistrationToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	anon := srv.Anon()
	valid := func(tok string) any {
		return anon.MustDo(t, http.MethodGet, "/_matrix/client/v1/register/m.login.registration_token/validity?token="+tok, nil).JSON["valid"]
	}
	if valid("once") != true || valid("old") != false || valid("unknown") != false {
		t.Fatal("validity answers wrong")
	}
	// Dummy is not offered.
	res := anon.Do(t, http.MethodPost, "register", dummyAuth(map[string]any{"username": "a1", "password": "secret12"}))
	if res.Status != 400 || res.ErrCode != "M_UNRECOGNIZED" {
		t.Fatalf("dummy with require_token: %d %s", res.Status, res.Body)
	}
	ch := anon.Do(t, http.MethodPost, "register", map[string]any{"username": "a1", "password": "secret12"})
	stages := ch.JSON["flows"].([]any)[0].(map[string]any)["stages"].([]any)
	if ch.Status != 401 || stages[0] != "m.login.registration_token" {
		t.Fatalf("challenge: %s", ch.Body)
	}
	session := ch.JSON["session"]
	res = anon.Do(t, http.MethodPost, "register", map[string]any{"username": "a1", "password": "secret12",
		"auth": map[string]any{"type": "m.login.registration_token", "token": "old", "session": session}})
	if res.Status != 401 || res.ErrCode != "M_UNAUTHORIZED" || res.JSON["flows"] == nil {
		t.Fatalf("expired token: %d %s", res.Status, res.Body)
	}
	anon.MustDo(t, http.MethodPost, "register", map[string]any{"username": "a1", "password": "secret12",
		"auth": map[string]any{"type": "m.login.registration_token", "token": "once", "session": session}})
	tok, err := srv.HS.Store.GetRegistrationToken(ctx, "once")
	if err != nil || tok.Completed != 1 || tok.Pending != 0 {
		t.Fatalf("token after use: %+v %v", tok, err)
	}
	if valid("once") != false {
		t.Fatal("used-up token still valid")
	}
	res = anon.Do(t, http.MethodPost, "register", map[string]any{"username": "a2", "password": "secret12",
		"auth": map[string]any{"type": "m.login.registration_token", "token": "once"}})
	if res.Status != 401 || res.ErrCode != "M_UNAUTHORIZED" {
		t.Fatalf("used-up token: %d %s", res.Status, res.Body)
	}
}

func TestGuestRegistration(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.Registration.AllowGuests = true })
	res := srv.Anon().MustDo(t, http.MethodPost, "register?kind=guest", map[string]any{})
	guest := &testserver.Client{S: srv, AccessToken: res.JSON["access_token"].(string)}
	who := guest.MustDo(t, http.MethodGet, "account/whoami", nil)
	if who.JSON["is_guest"] != true {
		t.Fatalf("whoami: %s", who.Body)
	}
	for _, p := range []string{"account/password", "account/deactivate", "delete_devices", "/_matrix/client/v1/login/get_token"} {
		res := guest.Do(t, http.MethodPost, p, map[string]any{})
		if res.Status != 403 || res.ErrCode != "M_GUEST_ACCESS_FORBIDDEN" {
			t.Fatalf("%s: %d %s", p, res.Status, res.Body)
		}
	}
	// A guest starts with its localpart as display name, and may change it.
	uid := id.UserID(res.JSON["user_id"].(string))
	if name := guest.MustDo(t, http.MethodGet, testserver.Sprintf("profile/%s/displayname", uid), nil).JSON["displayname"]; name != uid.Localpart() {
		t.Fatalf("guest's initial display name: %v", name)
	}
	guest.MustDo(t, http.MethodPut, testserver.Sprintf("profile/%s/displayname", res.JSON["user_id"]), map[string]any{"displayname": "Visitor"})
	if res := guest.Do(t, http.MethodPut, testserver.Sprintf("profile/%s/avatar_url", res.JSON["user_id"]), map[string]any{"avatar_url": "mxc://a/b"}); res.ErrCode != "M_GUEST_ACCESS_FORBIDDEN" {
		t.Fatalf("guest avatar: %d %s", res.Status, res.Body)
	}
	alice := srv.Register(t, "alice")
	if alice.MustDo(t, http.MethodGet, "account/whoami", nil).JSON["is_guest"] != false {
		t.Fatal("alice is a guest")
	}
}

func TestConcurrentRegistrationSameName(t *testing.T) {
	srv := testserver.New(t)
	var wg sync.WaitGroup
	codes := make(chan int, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- srv.Anon().Do(t, http.MethodPost, "register", dummyAuth(map[string]any{"username": "race", "password": "secret12"})).Status
		}()
	}
	wg.Wait()
	close(codes)
	ok := 0
	for c := range codes {
		if c == 200 {
			ok++
		} else if c != 400 {
			t.Fatalf("status %d", c)
		}
	}
	if ok != 1 {
		t.Fatalf("%d registrations of one name succeeded", ok)
	}
}

// TestUIASessionAcrossProcesses starts a registration on one server and
// finishes it on another sharing the database, as two processes behind a
// load balancer would.
func TestUIASessionAcrossProcesses(t *testing.T) {
	a := testserver.New(t)
	b := testserver.Start(t, a.Cfg)
	ch := a.Anon().Do(t, http.MethodPost, "register", map[string]any{"username": "shared", "password": "secret12"})
	if ch.Status != 401 {
		t.Fatalf("challenge: %d %s", ch.Status, ch.Body)
	}
	res := b.Anon().MustDo(t, http.MethodPost, "register", map[string]any{"auth": map[string]any{"type": "m.login.dummy", "session": ch.JSON["session"]}})
	if res.JSON["user_id"] != "@shared:hs1.test" {
		t.Fatalf("register on the second server: %s", res.Body)
	}
	// And a token from one server works on the other.
	c := &testserver.Client{S: a, AccessToken: res.JSON["access_token"].(string)}
	c.MustDo(t, http.MethodGet, "account/whoami", nil)
}

package clientapi_test

import (
	"net/http"
	"testing"
	"time"

	"parley/internal/config"
	"parley/internal/testserver"
)

func passwordLogin(ident map[string]any, password string) map[string]any {
	return map[string]any{"type": "m.login.password", "identifier": ident, "password": password}
}

func TestLoginForms(t *testing.T) {
	srv := testserver.New(t)
	srv.Register(t, "alice")
	anon := srv.Anon()

	flows := anon.MustDo(t, http.MethodGet, "login", nil).JSON["flows"].([]any)
	if len(flows) != 2 || flows[0].(map[string]any)["type"] != "m.login.password" || flows[1].(map[string]any)["type"] != "m.login.token" ||
		flows[1].(map[string]any)["get_login_token"] != true {
		t.Fatalf("flows: %v", flows)
	}

	tests := []struct {
		name     string
		body     any
		wantCode int
		wantErr  string
	}{
		{"localpart", passwordLogin(map[string]any{"type": "m.id.user", "user": "alice"}, "password"), 200, ""},
		{"full user ID", passwordLogin(map[string]any{"type": "m.id.user", "user": "@alice:hs1.test"}, "password"), 200, ""},
		{"upper-case localpart", passwordLogin(map[string]any{"type": "m.id.user", "user": "ALICE"}, "password"), 200, ""},
		{"deprecated user", map[string]any{"type": "m.login.password", "user": "alice", "password": "password"}, 200, ""},
		{"wrong password", passwordLogin(map[string]any{"type": "m.id.user", "user": "alice"}, "nope"), 403, "M_FORBIDDEN"},
		{"unknown user", passwordLogin(map[string]any{"type": "m.id.user", "user": "nobody"}, "password"), 403, "M_FORBIDDEN"},
		{"remote user", passwordLogin(map[string]any{"type": "m.id.user", "user": "@alice:other.test"}, "password"), 403, "M_FORBIDDEN"},
		{"third party", passwordLogin(map[string]any{"type": "m.id.thirdparty", "medium": "email", "address": "a@b.c"}, "password"), 403, "M_FORBIDDEN"},
		{"unknown identifier", passwordLogin(map[string]any{"type": "m.id.nope"}, "password"), 400, "M_UNKNOWN"},
		{"unknown type", map[string]any{"type": "m.login.magic"}, 400, "M_UNKNOWN"},
		{"no type", map[string]any{}, 400, "M_MISSING_PARAM"},
		{"no user", passwordLogin(map[string]any{"type": "m.id.user"}, "password"), 400, "M_MISSING_PARAM"},
		{"bad token", map[string]any{"type": "m.login.token", "token": "nope"}, 403, "M_FORBIDDEN"},
		{"not JSON", "{", 400, "M_NOT_JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := anon.Do(t, http.MethodPost, "login", tt.body)
			if res.Status != tt.wantCode || res.ErrCode != tt.wantErr {
				t.Fatalf("got %d %q, want %d %q: %s", res.Status, res.ErrCode, tt.wantCode, tt.wantErr, res.Body)
			}
			if res.Status == 200 && (res.JSON["user_id"] != "@alice:hs1.test" || res.JSON["access_token"] == "" || res.JSON["device_id"] == "") {
				t.Fatalf("login body: %s", res.Body)
			}
		})
	}
	// Logging in with an existing device ID replaces its session.
	first := anon.MustDo(t, http.MethodPost, "login", map[string]any{"type": "m.login.password", "user": "alice", "password": "password", "device_id": "LAPTOP"})
	anon.MustDo(t, http.MethodPost, "login", map[string]any{"type": "m.login.password", "user": "alice", "password": "password", "device_id": "LAPTOP"})
	old := &testserver.Client{S: srv, AccessToken: first.JSON["access_token"].(string)}
	if res := old.Do(t, http.MethodGet, "account/whoami", nil); res.ErrCode != "M_UNKNOWN_TOKEN" {
		t.Fatalf("replaced session: %d %s", res.Status, res.Body)
	}
}

func TestLoginToken(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	ch := alice.Do(t, http.MethodPost, "/_matrix/client/v1/login/get_token", map[string]any{})
	if ch.Status != 401 || ch.JSON["session"] == nil {
		t.Fatalf("get_token challenge: %d %s", ch.Status, ch.Body)
	}
	res := alice.MustDo(t, http.MethodPost, "/_matrix/client/v1/login/get_token", map[string]any{"auth": map[string]any{
		"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "password", "session": ch.JSON["session"],
	}})
	tok, _ := res.JSON["login_token"].(string)
	if tok == "" || res.JSON["expires_in_ms"].(float64) <= 0 {
		t.Fatalf("get_token: %s", res.Body)
	}
	login := srv.Anon().MustDo(t, http.MethodPost, "login", map[string]any{"type": "m.login.token", "token": tok})
	if login.JSON["user_id"] != "@alice:hs1.test" {
		t.Fatalf("token login: %s", login.Body)
	}
	// Single use.
	if res := srv.Anon().Do(t, http.MethodPost, "login", map[string]any{"type": "m.login.token", "token": tok}); res.Status != 403 {
		t.Fatalf("second use: %d %s", res.Status, res.Body)
	}
}

func TestRefreshTokens(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.Registration.AccessTokenLifetime = time.Hour })
	srv.Register(t, "alice")
	anon := srv.Anon()
	res := anon.MustDo(t, http.MethodPost, "login", map[string]any{"type": "m.login.password", "user": "alice", "password": "password", "refresh_token": true})
	a1, r1 := res.JSON["access_token"].(string), res.JSON["refresh_token"].(string)
	if r1 == "" || res.JSON["expires_in_ms"].(float64) != float64(time.Hour.Milliseconds()) {
		t.Fatalf("login with refresh: %s", res.Body)
	}
	// Without refresh_token: neither refresh_token nor expires_in_ms.
	plain := anon.MustDo(t, http.MethodPost, "login", map[string]any{"type": "m.login.password", "user": "alice", "password": "password"})
	if plain.JSON["refresh_token"] != nil || plain.JSON["expires_in_ms"] != nil {
		t.Fatalf("plain login: %s", plain.Body)
	}

	res = anon.MustDo(t, http.MethodPost, "refresh", map[string]any{"refresh_token": r1})
	a2, r2 := res.JSON["access_token"].(string), res.JSON["refresh_token"].(string)
	if a2 == "" || r2 == "" || r2 == r1 || res.JSON["expires_in_ms"] == nil {
		t.Fatalf("refresh: %s", res.Body)
	}
	c1 := &testserver.Client{S: srv, AccessToken: a1}
	c2 := &testserver.Client{S: srv, AccessToken: a2}
	// The old token still works until the new one is used...
	c1.MustDo(t, http.MethodGet, "account/whoami", nil)
	who := c2.MustDo(t, http.MethodGet, "account/whoami", nil)
	if who.JSON["device_id"] != res.JSON["device_id"] && who.JSON["user_id"] != "@alice:hs1.test" {
		t.Fatalf("whoami: %s", who.Body)
	}
	// ...and then neither the old access token nor the old refresh token does.
	if res := c1.Do(t, http.MethodGet, "account/whoami", nil); res.Status != 401 || res.ErrCode != "M_UNKNOWN_TOKEN" {
		t.Fatalf("old access token: %d %s", res.Status, res.Body)
	}
	if res := anon.Do(t, http.MethodPost, "refresh", map[string]any{"refresh_token": r1}); res.Status != 401 || res.ErrCode != "M_UNKNOWN_TOKEN" {
		t.Fatalf("old refresh token: %d %s", res.Status, res.Body)
	}
	if res := anon.Do(t, http.MethodPost, "refresh", map[string]any{"refresh_token": "garbage"}); res.Status != 401 || res.ErrCode != "M_UNKNOWN_TOKEN" {
		t.Fatalf("bad refresh token: %d %s", res.Status, res.Body)
	}
	if res := anon.Do(t, http.MethodPost, "refresh", map[string]any{}); res.Status != 400 || res.ErrCode != "M_MISSING_PARAM" {
		t.Fatalf("missing refresh token: %d %s", res.Status, res.Body)
	}
	// The new refresh token works.
	anon.MustDo(t, http.MethodPost, "refresh", map[string]any{"refresh_token": r2})
}

func TestExpiredAccessToken(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.Registration.AccessTokenLifetime = time.Second })
	res := srv.Anon().MustDo(t, http.MethodPost, "register", dummyAuth(map[string]any{"username": "alice", "password": "password", "refresh_token": true}))
	c := &testserver.Client{S: srv, AccessToken: res.JSON["access_token"].(string)}
	time.Sleep(1200 * time.Millisecond)
	got := c.Do(t, http.MethodGet, "account/whoami", nil)
	if got.Status != 401 || got.ErrCode != "M_UNKNOWN_TOKEN" || got.JSON["soft_logout"] != true {
		t.Fatalf("expired: %d %s", got.Status, got.Body)
	}
	res = srv.Anon().MustDo(t, http.MethodPost, "refresh", map[string]any{"refresh_token": res.JSON["refresh_token"]})
	c.AccessToken = res.JSON["access_token"].(string)
	c.MustDo(t, http.MethodGet, "account/whoami", nil)
}

func TestLogoutAll(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	second := srv.Anon().MustDo(t, http.MethodPost, "login", map[string]any{"type": "m.login.password", "user": "alice", "password": "password"})
	other := &testserver.Client{S: srv, AccessToken: second.JSON["access_token"].(string)}
	alice.MustDo(t, http.MethodPost, "logout/all", map[string]any{})
	for _, c := range []*testserver.Client{alice, other} {
		if res := c.Do(t, http.MethodGet, "account/whoami", nil); res.ErrCode != "M_UNKNOWN_TOKEN" {
			t.Fatalf("after logout/all: %d %s", res.Status, res.Body)
		}
	}
}

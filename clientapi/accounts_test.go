package clientapi_test

import (
	"net/http"
	"testing"

	"parley/internal/testserver"
)

func TestRegisterLoginWhoami(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")

	res := alice.MustDo(t, http.MethodGet, "account/whoami", nil)
	if res.JSON["user_id"] != "@alice:hs1.test" || res.JSON["device_id"] != string(alice.DeviceID) {
		t.Fatalf("whoami: %s", res.Body)
	}

	res = srv.Anon().Do(t, http.MethodPost, "login", map[string]any{
		"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "wrong",
	})
	if res.Status != http.StatusForbidden || res.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("wrong password: %d %s", res.Status, res.Body)
	}
	res = srv.Anon().Do(t, http.MethodPost, "login", map[string]any{
		"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "@alice:hs1.test"}, "password": "password",
	})
	if res.Status != http.StatusOK || res.JSON["user_id"] != "@alice:hs1.test" {
		t.Fatalf("login: %d %s", res.Status, res.Body)
	}

	res = srv.Anon().Do(t, http.MethodGet, "account/whoami", nil)
	if res.Status != http.StatusUnauthorized || res.ErrCode != "M_MISSING_TOKEN" {
		t.Fatalf("no token: %d %s", res.Status, res.Body)
	}
	alice.MustDo(t, http.MethodPost, "logout", map[string]any{})
	res = alice.Do(t, http.MethodGet, "account/whoami", nil)
	if res.Status != http.StatusUnauthorized || res.ErrCode != "M_UNKNOWN_TOKEN" {
		t.Fatalf("after logout: %d %s", res.Status, res.Body)
	}
	res = srv.Anon().Do(t, http.MethodGet, "/_matrix/client/v3/nonexistent", nil)
	if res.Status != http.StatusNotFound || res.ErrCode != "M_UNRECOGNIZED" {
		t.Fatalf("unknown endpoint: %d %s", res.Status, res.Body)
	}
}

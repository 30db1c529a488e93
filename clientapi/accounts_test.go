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
	// A known endpoint under a method it does not serve: 405, whichever
	// component's router holds it.
	for _, p := range []string{"/_matrix/client/v3/login", "/_matrix/client/v3/sync", "/_matrix/federation/v1/version", "/_matrix/media/v3/upload"} {
		res = srv.Anon().Do(t, http.MethodPatch, p, nil)
		if res.Status != http.StatusMethodNotAllowed || res.ErrCode != "M_UNRECOGNIZED" {
			t.Fatalf("PATCH %s: %d %s", p, res.Status, res.Body)
		}
	}
	res = srv.Anon().Do(t, http.MethodPut, "/_matrix/client/v3/login", map[string]any{})
	if res.Status != http.StatusMethodNotAllowed || res.ErrCode != "M_UNRECOGNIZED" {
		t.Fatalf("PUT login: %d %s", res.Status, res.Body)
	}
}

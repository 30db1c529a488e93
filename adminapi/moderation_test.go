package adminapi_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"parley/internal/config"
	"parley/internal/homeserver"
	"parley/internal/testserver"
)

func TestDenylists(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) {
		c.Moderation.RegistrationDenylist = []string{"admin.*", "root"}
		c.Moderation.AliasDenylist = []string{"#official.*:hs1.test"}
	})
	for _, name := range []string{"admin", "administrator", "root"} {
		res := srv.Anon().Do(t, http.MethodPost, "register", map[string]any{"username": name, "password": "password", "auth": map[string]any{"type": "m.login.dummy"}})
		if res.Status != 400 || res.ErrCode != "M_INVALID_USERNAME" {
			t.Errorf("register %s: %d %s", name, res.Status, res.Body)
		}
		if res := srv.Anon().Do(t, http.MethodGet, "register/available?username="+name, nil); res.Status != 400 {
			t.Errorf("available %s: %d", name, res.Status)
		}
	}
	alice := srv.Register(t, "rootless") // full-match only: not denied by "root"
	if res := alice.Do(t, http.MethodPost, "createRoom", map[string]any{"room_alias_name": "official-news"}); res.Status != 403 || res.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("createRoom with denied alias: %d %s", res.Status, res.Body)
	}
	room := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"room_alias_name": "news"}).JSON["room_id"].(string)
	if res := alice.Do(t, http.MethodPut, testserver.Sprintf("directory/room/%s", "#officialx:hs1.test"), map[string]any{"room_id": room}); res.Status != 403 || res.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("alias PUT denied: %d %s", res.Status, res.Body)
	}
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("directory/room/%s", "#other:hs1.test"), map[string]any{"room_id": room})
}

func TestRegistrationApproval(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.Moderation.RegistrationRequiresApproval = true })
	res := srv.Anon().Do(t, http.MethodPost, "register", map[string]any{"username": "carol", "password": "password", "auth": map[string]any{"type": "m.login.dummy"}})
	if res.Status != 403 || res.ErrCode != "M_USER_AWAITING_APPROVAL" {
		t.Fatalf("register: %d %s", res.Status, res.Body)
	}
	login := func() *testserver.Response {
		return srv.Anon().Do(t, http.MethodPost, "login", map[string]any{"type": "m.login.password",
			"identifier": map[string]any{"type": "m.id.user", "user": "carol"}, "password": "password"})
	}
	if res := login(); res.Status != 403 || res.ErrCode != "M_USER_AWAITING_APPROVAL" {
		t.Fatalf("login before approval: %d %s", res.Status, res.Body)
	}
	// An admin created directly in the database approves carol.
	if _, err := homeserver.RegisterUser(context.Background(), srv.Cfg, "root", "password", true); err != nil {
		t.Fatal(err)
	}
	lr := srv.Anon().MustDo(t, http.MethodPost, "login", map[string]any{"type": "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": "root"}, "password": "password"})
	root := &testserver.Client{S: srv, AccessToken: lr.JSON["access_token"].(string)}
	u := url.PathEscape("@carol:hs1.test")
	if res := root.MustDo(t, http.MethodGet, "/_synapse/admin/v2/users/"+u, nil); res.JSON["approved"] != false {
		t.Fatalf("carol shown approved: %s", res.Body)
	}
	root.MustDo(t, http.MethodPut, "/_synapse/admin/v2/users/"+u, map[string]any{"approved": true})
	if res := login(); res.Status != 200 {
		t.Fatalf("login after approval: %d %s", res.Status, res.Body)
	}
}

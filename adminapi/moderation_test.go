package adminapi_test

import (
	"net/http"
	"testing"

	"parley/internal/config"
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

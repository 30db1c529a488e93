package federation_test

import (
	"net/http"
	"testing"

	"parley/internal/testserver"
)

// TestAppServiceFederatedQueries: other servers' profile and alias queries,
// and invites, for unknown users and aliases of an application service's
// namespaces are asked of the service.
func TestAppServiceFederatedQueries(t *testing.T) {
	as := testserver.NewAppService(t, "bridge", `[{exclusive: true, regex: '@bridge_.*:hs1\.test'}]`, `[{exclusive: true, regex: '#bridge_.*:hs1\.test'}]`, `[]`)
	s := testserver.NewFederation(t, []string{"hs1.test", "hs2.test"}, testserver.AppServices(as))
	hs1, hs2 := s[0], s[1]
	bot := as.Client(hs1)
	room := bot.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)
	as.Handle(func(w http.ResponseWriter, r testserver.ASRequest) bool {
		switch r.Path {
		case "/_matrix/app/v1/users/@bridge_remote:hs1.test", "/_matrix/app/v1/users/@bridge_invitee:hs1.test":
			return false
		case "/_matrix/app/v1/rooms/#bridge_lazy:hs1.test":
			bot.MustDo(t, http.MethodPut, "directory/room/"+testserver.PathEscape("#bridge_lazy:hs1.test"), map[string]any{"room_id": room})
			return false
		}
		w.WriteHeader(http.StatusNotFound)
		return true
	})
	bob := hs2.Register(t, "bob")
	res := bob.MustDo(t, http.MethodGet, "profile/@bridge_remote:hs1.test", nil)
	if res.JSON["displayname"] != "bridge_remote" {
		t.Fatalf("remote profile of a queried user: %s", res.Body)
	}
	res = bob.MustDo(t, http.MethodGet, "directory/room/"+testserver.PathEscape("#bridge_lazy:hs1.test"), nil)
	if res.JSON["room_id"] != room {
		t.Fatalf("remote alias created on request: %s", res.Body)
	}
	// An invite from another server to an unknown user of the namespace.
	r2 := bob.MustDo(t, http.MethodPost, "createRoom", map[string]any{}).JSON["room_id"].(string)
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/invite", r2), map[string]any{"user_id": "@bridge_invitee:hs1.test"})
	if q := as.Requests("/_matrix/app/v1/users/@bridge_invitee:hs1.test"); len(q) == 0 {
		t.Fatal("the invite did not ask the service")
	}
}

package federation_test

import (
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix/id"
)

func TestRemoteProfileAndDirectory(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	alice.MustDo(t, http.MethodPut, "profile/"+string(alice.UserID)+"/displayname", map[string]any{"displayname": "Alice A."})

	res := bob.MustDo(t, http.MethodGet, "profile/"+url.PathEscape(string(alice.UserID)), nil)
	if res.JSON["displayname"] != "Alice A." {
		t.Fatalf("remote profile: %s", res.Body)
	}
	res = bob.MustDo(t, http.MethodGet, "profile/"+url.PathEscape(string(alice.UserID))+"/displayname", nil)
	if res.JSON["displayname"] != "Alice A." {
		t.Fatalf("remote profile field: %s", res.Body)
	}
	if r := bob.Do(t, http.MethodGet, "profile/@nobody:hs1.test", nil); r.Status != 404 || r.ErrCode != "M_NOT_FOUND" {
		t.Fatalf("unknown remote user: %d %s", r.Status, r.Body)
	}

	roomID := id.RoomID(alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat", "room_alias_name": "lobby"}).JSON["room_id"].(string))
	res = bob.MustDo(t, http.MethodGet, "directory/room/"+url.PathEscape("#lobby:hs1.test"), nil)
	if res.JSON["room_id"] != string(roomID) {
		t.Fatalf("remote alias: %s", res.Body)
	}
	if servers, _ := res.JSON["servers"].([]any); len(servers) == 0 || servers[0] != "hs1.test" {
		t.Fatalf("remote alias servers: %s", res.Body)
	}
	if r := bob.Do(t, http.MethodGet, "directory/room/"+url.PathEscape("#missing:hs1.test"), nil); r.Status != 404 || r.ErrCode != "M_NOT_FOUND" {
		t.Fatalf("unknown remote alias: %d %s", r.Status, r.Body)
	}
	// Joining by remote alias: the directory answer gives the room and the servers to join through.
	res = bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape("#lobby:hs1.test"), map[string]any{})
	if res.JSON["room_id"] != string(roomID) {
		t.Fatalf("join by alias: %s", res.Body)
	}
	eventually(t, "bob joined on hs1", func() bool { return membership(t, alice, roomID, bob.UserID) == "join" })
}

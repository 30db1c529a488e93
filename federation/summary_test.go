package federation_test

import (
	"net/http"
	"net/url"
	"testing"
)

// TestRoomSummaryOverFederation: GET /v1/room_summary for a room only
// another server is in is answered from that server's /hierarchy, asking
// the via servers (or the alias's server); rooms the user may not see stay
// hidden, and anonymous callers never cause a federation request.
func TestRoomSummaryOverFederation(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	pub := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Lobby", "room_alias_name": "lobby"})
	private := createRoom(t, alice, map[string]any{"preset": "private_chat", "name": "Secret"})
	summary := func(target, via string) (int, map[string]any) {
		p := "/_matrix/client/v1/room_summary/" + url.PathEscape(target)
		if via != "" {
			p += "?via=" + url.QueryEscape(via)
		}
		res := bob.Do(t, http.MethodGet, p, nil)
		return res.Status, res.JSON
	}
	if st, b := summary(string(pub), "hs1.test"); st != 200 || b["name"] != "Lobby" || b["room_id"] != string(pub) || b["num_joined_members"] != float64(1) {
		t.Fatalf("remote public room: %d %v", st, b)
	}
	if st, b := summary("#lobby:hs1.test", ""); st != 200 || b["room_id"] != string(pub) {
		t.Fatalf("remote alias: %d %v", st, b)
	}
	if st, b := summary(string(private), "hs1.test"); st != 404 || b["errcode"] != "M_NOT_FOUND" {
		t.Fatalf("remote private room: %d %v", st, b)
	}
	res := hs2.Anon().Do(t, http.MethodGet, "/_matrix/client/v1/room_summary/"+url.PathEscape(string(pub))+"?via=hs1.test", nil)
	if res.Status != 404 {
		t.Fatalf("anonymous summary of a remote room: %d %s", res.Status, res.Body)
	}
}

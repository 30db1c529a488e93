package federation_test

import (
	"net/http"
	"net/url"
	"testing"

	"parley/internal/testserver"
)

// TestPresenceAcrossServers: a user's presence changes reach the users of
// another server who share a room with them (m.presence EDUs), and a
// remote user's presence can be read with GET /presence.
func TestPresenceAcrossServers(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(room)), map[string]any{})
	eventually(t, "bob joined on hs1", func() bool { return membership(t, alice, room, bob.UserID) == "join" })

	// bob's sync on hs2 sees alice's presence as she sets it on hs1.
	since := bob.MustDo(t, http.MethodGet, "sync?timeout=0", nil).JSON["next_batch"].(string)
	seen := func(presence, msg string) bool {
		res := bob.MustDo(t, http.MethodGet, "sync?timeout=500&since="+url.QueryEscape(since), nil)
		since = res.JSON["next_batch"].(string)
		p, _ := res.JSON["presence"].(map[string]any)
		evs, _ := p["events"].([]any)
		for _, e := range evs {
			ev := e.(map[string]any)
			c, _ := ev["content"].(map[string]any)
			if ev["sender"] == string(alice.UserID) && c["presence"] == presence && (msg == "" || c["status_msg"] == msg) {
				return true
			}
		}
		return false
	}
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("presence/%s/status", alice.UserID), map[string]any{"presence": "online", "status_msg": "at my desk"})
	eventually(t, "alice's online presence on hs2", func() bool { return seen("online", "at my desk") })
	res := bob.MustDo(t, http.MethodGet, testserver.Sprintf("presence/%s/status", alice.UserID), nil)
	if res.JSON["presence"] != "online" || res.JSON["status_msg"] != "at my desk" {
		t.Fatalf("GET presence of a remote user: %s", res.Body)
	}
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("presence/%s/status", alice.UserID), map[string]any{"presence": "unavailable"})
	eventually(t, "alice's unavailable presence on hs2", func() bool { return seen("unavailable", "") })
}

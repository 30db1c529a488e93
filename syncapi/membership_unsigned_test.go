package syncapi_test

import (
	"net/http"
	"testing"

	"github.com/tidwall/gjson"

	"parley/internal/testserver"
)

// TestSyncUnsignedMembership: each timeline event carries the syncing user's
// membership at it (unsigned.membership): "leave" before their join, "join"
// from the join on.
func TestSyncUnsignedMembership(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := newRoom(t, alice)
	pre := sendMsg(t, alice, room, text("prejoin"))
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	post := sendMsg(t, alice, room, text("postjoin"))

	res := bob.MustDo(t, http.MethodGet, "sync", nil)
	evs := gjson.GetBytes(res.Body, "rooms.join."+gjson.Escape(string(room))+".timeline.events").Array()
	want, seenJoin, checked := "leave", false, map[string]bool{}
	for _, ev := range evs {
		if ev.Get("type").Str == "m.room.member" && ev.Get("state_key").Str == string(bob.UserID) {
			want, seenJoin = "join", true
		}
		if got := ev.Get("unsigned.membership").Str; got != want {
			t.Fatalf("event %s: membership %q, want %q", ev.Raw, got, want)
		}
		checked[ev.Get("event_id").Str] = true
	}
	if !seenJoin || !checked[pre] || !checked[post] {
		t.Fatalf("timeline incomplete: %s", res.Body)
	}
}

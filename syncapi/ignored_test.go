package syncapi_test

import (
	"net/http"
	"testing"

	"github.com/tidwall/gjson"

	"parley/internal/testserver"
)

// TestSyncHidesIgnoredUsers: with bob in m.ignored_user_list, alice's /sync
// leaves out bob's invites and his message events (not his state events);
// carol's invite still arrives.
func TestSyncHidesIgnoredUsers(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	shared := newRoom(t, bob, alice)
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("user/%s/account_data/m.ignored_user_list", alice.UserID),
		map[string]any{"ignored_users": map[string]any{string(bob.UserID): map[string]any{}}})
	since := inboxSync(t, alice, nil).NextBatch

	hidden := sendMsg(t, bob, shared, text("you cannot see me"))
	seen := sendMsg(t, alice, shared, text("I can see me"))
	bobRoom := bob.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "private_chat", "invite": []string{string(alice.UserID)}}).JSON["room_id"].(string)
	carolRoom := carol.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "private_chat", "invite": []string{string(alice.UserID)}}).JSON["room_id"].(string)

	for _, q := range []string{"sync?timeout=0&since=" + since, "sync"} {
		res := alice.MustDo(t, http.MethodGet, q, nil)
		invites := gjson.GetBytes(res.Body, "rooms.invite")
		if invites.Get(gjson.Escape(bobRoom)).Exists() || !invites.Get(gjson.Escape(carolRoom)).Exists() {
			t.Fatalf("%s: invites: %s", q, invites.Raw)
		}
		ids := map[string]bool{}
		for _, e := range gjson.GetBytes(res.Body, "rooms.join."+gjson.Escape(string(shared))+".timeline.events").Array() {
			ids[e.Get("event_id").Str] = true
		}
		if ids[hidden] || !ids[seen] {
			t.Fatalf("%s: timeline: %s", q, res.Body)
		}
	}
	// Un-ignoring brings bob's invite back.
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("user/%s/account_data/m.ignored_user_list", alice.UserID),
		map[string]any{"ignored_users": map[string]any{}})
	res := alice.MustDo(t, http.MethodGet, "sync", nil)
	if !gjson.GetBytes(res.Body, "rooms.invite."+gjson.Escape(bobRoom)).Exists() {
		t.Fatalf("un-ignored invite missing: %s", res.Body)
	}
}

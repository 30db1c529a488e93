package syncapi_test

import (
	"net/http"
	"testing"

	"github.com/tidwall/gjson"

	"parley/internal/testserver"
)

// TestForgottenLeaveInIncrementalSync: a room left and forgotten since the
// token still shows its leave in the incremental sync (other devices must
// learn of it), but never in an initial sync.
func TestForgottenLeaveInIncrementalSync(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := newRoom(t, bob, alice)
	since := inboxSync(t, alice, nil).NextBatch
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/leave", room), map[string]any{})
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/forget", room), map[string]any{})
	filter := `{"room":{"include_leave":true}}`
	res := alice.MustDo(t, http.MethodGet, "sync?timeout=0&since="+since+"&filter="+filter, nil)
	if !gjson.GetBytes(res.Body, "rooms.leave."+gjson.Escape(string(room))).Exists() {
		t.Fatalf("incremental sync lacks the leave: %s", res.Body)
	}
	res = alice.MustDo(t, http.MethodGet, "sync?filter="+filter, nil)
	if gjson.GetBytes(res.Body, "rooms.leave."+gjson.Escape(string(room))).Exists() {
		t.Fatalf("initial sync has the forgotten room: %s", res.Body)
	}
}

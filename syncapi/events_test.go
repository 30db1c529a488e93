package syncapi_test

import (
	"net/http"
	"net/url"
	"testing"

	"parley/internal/testserver"
)

// TestEventsStream: the deprecated GET /events streams a user's new room
// events and ephemeral events (each with its room_id) from a token.
func TestEventsStream(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := newRoom(t, alice, bob)
	res := bob.MustDo(t, http.MethodGet, "events?timeout=0", nil)
	end, _ := res.JSON["end"].(string)
	if end == "" || res.JSON["start"] != end || len(res.JSON["chunk"].([]any)) != 0 {
		t.Fatalf("initial /events: %s", res.Body)
	}
	next := func() []map[string]any {
		t.Helper()
		res := bob.MustDo(t, http.MethodGet, "events?timeout=5000&from="+url.QueryEscape(end), nil)
		if res.JSON["start"] != end {
			t.Fatalf("start %v, want the from token %s", res.JSON["start"], end)
		}
		end = res.JSON["end"].(string)
		var out []map[string]any
		for _, e := range res.JSON["chunk"].([]any) {
			out = append(out, e.(map[string]any))
		}
		return out
	}
	msg := sendMsg(t, alice, room, text("streamed"))
	var got map[string]any
	for _, e := range next() {
		if e["event_id"] == msg {
			got = e
		}
	}
	if got == nil || got["room_id"] != string(room) || got["content"].(map[string]any)["body"] != "streamed" {
		t.Fatalf("message not streamed: %v", got)
	}
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/typing/%s", room, alice.UserID), map[string]any{"typing": true, "timeout": 10000})
	found := false
	for _, e := range next() {
		found = found || e["type"] == "m.typing" && e["room_id"] == string(room)
	}
	if !found {
		t.Fatal("typing not streamed with its room_id")
	}
	wantErr(t, bob.Do(t, http.MethodGet, "events?from=garbage", nil), http.StatusBadRequest, "M_INVALID_PARAM")
	wantErr(t, bob.Do(t, http.MethodGet, "events?limit=-1", nil), http.StatusBadRequest, "M_INVALID_PARAM")
	wantErr(t, bob.Do(t, http.MethodGet, "events?limit=ten", nil), http.StatusBadRequest, "M_INVALID_PARAM")
}

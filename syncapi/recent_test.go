package syncapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"testing"

	"parley/internal/testserver"
)

// TestRecentTimelinesMatchStorage: incremental /sync timelines read from
// the process's recent events are the ones storage gives. A second process
// on the same database has seen no events, so it reads every timeline back;
// along a history of messages, state, relations, a redaction, a join, a
// room bob is not in and a burst longer than the timeline limit, both answer
// /sync from every earlier token, with and without a filter.
func TestRecentTimelinesMatchStorage(t *testing.T) {
	if os.Getenv("PARLEY_TEST_DB") == "postgres" {
		// A database shared with other processes turns the window off:
		// both sides would read storage.
		t.Skip("the recent-events window is off on PostgreSQL")
	}
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := newRoom(t, alice, bob)
	other := newRoom(t, alice)

	// The second process writes nothing: it publishes no events, so it
	// reads every timeline from storage.
	srv2 := testserver.Start(t, srv.Cfg)
	bob2 := *bob
	bob2.S = srv2
	filters := []string{"", `{"room":{"timeline":{"limit":3,"not_types":["m.reaction"]}}}`}
	var tokens []string
	// mark compares the answers to /sync from every earlier token, then takes a new one.
	mark := func() {
		t.Helper()
		for _, filter := range filters {
			for i, since := range tokens {
				q := url.Values{"since": {since}}
				if filter != "" {
					q.Set("filter", filter)
				}
				fromMemory := roomsOf(t, bob.MustDo(t, http.MethodGet, "sync?"+q.Encode(), nil).Body)
				fromStorage := roomsOf(t, bob2.MustDo(t, http.MethodGet, "sync?"+q.Encode(), nil).Body)
				if !reflect.DeepEqual(fromMemory, fromStorage) {
					a, _ := json.Marshal(fromMemory)
					b, _ := json.Marshal(fromStorage)
					t.Fatalf("filter %q, token %d of %d: rooms differ\nrecent:  %s\nstorage: %s", filter, i, len(tokens), a, b)
				}
			}
		}
		tokens = append(tokens, inboxSync(t, bob, nil).NextBatch)
	}
	mark()
	m1 := sendMsg(t, alice, room, text("one"))
	mark()
	sendMsg(t, bob, room, text("two (bob's own, with its transaction id)"))
	sendMsg(t, alice, other, text("not for bob"))
	mark()
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.topic/", room), map[string]any{"topic": "t"})
	mark()
	m3 := sendMsg(t, alice, room, text("three"))
	mark()
	// A reaction and an edit: the earlier events gain bundled relations.
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.reaction/r1", room), map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": m3, "key": "👍"}})
	sendMsg(t, alice, room, map[string]any{"msgtype": "m.text", "body": "* three!", "m.new_content": text("three!"),
		"m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": m3}})
	mark()
	sendMsg(t, bob, room, text("four"))
	mark()
	// A redaction changes a stored event.
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/redact/%s/x1", room, m1), map[string]any{"reason": "oops"})
	mark()
	sendMsg(t, alice, room, text("five"))
	mark()
	carol.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	sendMsg(t, carol, room, text("six"))
	mark()
	for i := range 14 {
		sendMsg(t, alice, room, text(fmt.Sprint("burst ", i)))
		if i == 5 {
			mark()
		}
	}
	mark()
	if srv.HS.PDU.RecentReads() == 0 {
		t.Fatal("no timeline was read from the recent events")
	}
	if srv2.HS.PDU.RecentReads() != 0 {
		t.Fatal("the second process read timelines it never saw")
	}
}

// roomsOf returns the rooms section of a /sync response without the
// events' ages, which depend on the time of the request.
func roomsOf(t *testing.T, body []byte) any {
	t.Helper()
	var resp struct {
		Rooms map[string]any `json:"rooms"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("decode sync: %v", err)
	}
	var strip func(v any)
	strip = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if u, ok := x["unsigned"].(map[string]any); ok {
				delete(u, "age")
			}
			for _, e := range x {
				strip(e)
			}
		case []any:
			for _, e := range x {
				strip(e)
			}
		}
	}
	strip(resp.Rooms)
	return resp.Rooms
}

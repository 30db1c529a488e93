package syncapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
	"parley/syncapi"
)

// sendEvent feeds an event to the inbox as the roomserver does after persisting it.
func sendEvent(t *testing.T, srv *testserver.Server, room id.RoomID, sender id.UserID, evID string, pos int64, content map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"type": "m.room.message", "room_id": room, "sender": sender, "event_id": evID,
		"origin_server_ts": time.Now().UnixMilli(), "content": content})
	var ev event.Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	members, _ := srv.HS.Membership.JoinedMembers(context.Background(), room)
	err := srv.HS.Inbox.ProcessEvent(context.Background(), &syncapi.PushEvent{Event: &ev, Raw: raw, StreamPos: pos,
		Members: members, DisplayNames: map[id.UserID]string{"@bob:hs1.test": "Bobby"}, RoomName: "Test room"})
	if err != nil {
		t.Fatalf("ProcessEvent: %v", err)
	}
}

type counts struct{ n, h int }

func unread(t *testing.T, s *syncResp, room id.RoomID) counts {
	t.Helper()
	jr, ok := s.Rooms.Join[room]
	if !ok || jr.UnreadNotifications == nil {
		t.Fatalf("room %s without unread_notifications: %s", room, s.raw)
	}
	return counts{jr.UnreadNotifications.NotificationCount, jr.UnreadNotifications.HighlightCount}
}

func TestNotificationCounts(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	bob2 := login(t, bob)
	room := id.RoomID("!room:hs1.test")
	for _, u := range []id.UserID{alice.UserID, bob.UserID, "@carol:hs1.test", "@remote:other.test"} {
		srv.HS.Membership.SetJoined(room, u, true)
	}
	b1 := inboxSync(t, bob, nil)
	b2 := inboxSync(t, bob2, nil)
	if c := unread(t, b1, room); c != (counts{}) {
		t.Fatalf("initial counts %+v", c)
	}
	// Bob long-polls; a message wakes him via the notification.
	done := make(chan *syncResp, 1)
	go func() { done <- inboxSync(t, bob2, map[string]string{"since": b2.NextBatch, "timeout": "10000"}) }()
	time.Sleep(100 * time.Millisecond)
	sendEvent(t, srv, room, alice.UserID, "$m1", 1, map[string]any{"msgtype": "m.text", "body": "hello all"})
	select {
	case s := <-done:
		if c := unread(t, s, room); c != (counts{1, 0}) {
			t.Fatalf("after message: %+v", c)
		}
		b2 = s
	case <-time.After(5 * time.Second):
		t.Fatal("notification did not wake bob")
	}
	sendEvent(t, srv, room, alice.UserID, "$m2", 2, map[string]any{"msgtype": "m.text", "body": "hey @bob:hs1.test",
		"m.mentions": map[string]any{"user_ids": []string{"@bob:hs1.test"}}})
	sendEvent(t, srv, room, alice.UserID, "$m3", 3, map[string]any{"msgtype": "m.text", "body": "Bobby, look"})
	sendEvent(t, srv, room, alice.UserID, "$m4", 4, map[string]any{"msgtype": "m.notice", "body": "bot says hi"})
	sendEvent(t, srv, room, bob.UserID, "$m5", 5, map[string]any{"msgtype": "m.text", "body": "my own message"})
	s := inboxSync(t, bob, nil)
	if c := unread(t, s, room); c != (counts{3, 2}) {
		t.Fatalf("counts after mention, display name, notice, own message: %+v", c)
	}
	// The sender is not notified.
	if c := unread(t, inboxSync(t, alice, nil), room); c != (counts{1, 0}) {
		t.Fatalf("alice's counts (bob's message only): %+v", c)
	}

	// /notifications lists them newest first, only=highlight filters.
	res := bob.MustDo(t, http.MethodGet, "notifications", nil)
	ns := res.JSON["notifications"].([]any)
	if len(ns) != 3 || ns[0].(map[string]any)["event"].(map[string]any)["event_id"] != "$m3" || ns[0].(map[string]any)["read"] != false {
		t.Fatalf("notifications: %s", res.Body)
	}
	res = bob.MustDo(t, http.MethodGet, "notifications?only=highlight&limit=1", nil)
	ns = res.JSON["notifications"].([]any)
	if len(ns) != 1 || res.JSON["next_token"] == nil {
		t.Fatalf("highlight page 1: %s", res.Body)
	}
	res = bob.MustDo(t, http.MethodGet, "notifications?only=highlight&limit=1&from="+res.JSON["next_token"].(string), nil)
	if ns := res.JSON["notifications"].([]any); len(ns) != 1 || ns[0].(map[string]any)["event"].(map[string]any)["event_id"] != "$m2" {
		t.Fatalf("highlight page 2: %s", res.Body)
	}
	wantErr(t, bob.Do(t, http.MethodGet, "notifications?limit=x", nil), 400, "M_INVALID_PARAM")

	// A receipt on one device resets the counts on every device.
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", room, "$m3"), map[string]any{})
	s = inboxSync(t, bob2, map[string]string{"since": b2.NextBatch, "timeout": "5000"})
	if c := unread(t, s, room); c != (counts{}) {
		t.Fatalf("bob2 after receipt on bob: %+v: %s", c, s.raw)
	}
	if c := unread(t, inboxSync(t, bob, since(b1.NextBatch)), room); c != (counts{}) {
		t.Fatalf("bob after receipt: %+v", c)
	}
	res = bob.MustDo(t, http.MethodGet, "notifications", nil)
	if n := res.JSON["notifications"].([]any)[0].(map[string]any); n["read"] != true {
		t.Fatalf("notification not marked read: %s", res.Body)
	}
	// A private receipt works as well.
	sendEvent(t, srv, room, alice.UserID, "$m6", 6, map[string]any{"msgtype": "m.text", "body": "again"})
	if c := unread(t, inboxSync(t, bob2, nil), room); c != (counts{1, 0}) {
		t.Fatalf("after new message: %+v", c)
	}
	bob2.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read.private/%s", room, "$m6"), map[string]any{})
	if c := unread(t, inboxSync(t, bob, nil), room); c != (counts{}) {
		t.Fatalf("after private receipt: %+v", c)
	}
}

func TestThreadNotificationCounts(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := id.RoomID("!room:hs1.test")
	srv.HS.Membership.SetJoined(room, alice.UserID, true)
	srv.HS.Membership.SetJoined(room, bob.UserID, true)
	thread := map[string]any{"rel_type": "m.thread", "event_id": "$root"}
	sendEvent(t, srv, room, alice.UserID, "$root", 1, map[string]any{"msgtype": "m.text", "body": "root"})
	sendEvent(t, srv, room, alice.UserID, "$t1", 2, map[string]any{"msgtype": "m.text", "body": "in thread", "m.relates_to": thread})
	sendEvent(t, srv, room, alice.UserID, "$t2", 3, map[string]any{"msgtype": "m.text", "body": "bob in thread",
		"m.relates_to": thread, "m.mentions": map[string]any{"user_ids": []string{"@bob:hs1.test"}}})

	filter := map[string]string{"filter": `{"room":{"timeline":{"unread_thread_notifications":true}}}`}
	s := inboxSync(t, bob, filter)
	if c := unread(t, s, room); c != (counts{1, 0}) {
		t.Fatalf("main counts: %+v", c)
	}
	th := s.Rooms.Join[room].UnreadThreadNotifications["$root"]
	if th.NotificationCount != 2 || th.HighlightCount != 1 {
		t.Fatalf("thread counts: %s", s.raw)
	}
	// Without the filter flag everything is summed.
	if c := unread(t, inboxSync(t, bob, nil), room); c != (counts{3, 1}) {
		t.Fatalf("summed counts: %+v", c)
	}
	// A threaded receipt clears only its thread.
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", room, "$t2"), map[string]any{"thread_id": "$root"})
	s = inboxSync(t, bob, filter)
	if c := unread(t, s, room); c != (counts{1, 0}) || len(s.Rooms.Join[room].UnreadThreadNotifications) != 0 {
		t.Fatalf("after thread receipt: %+v %s", c, s.raw)
	}
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", room, "$root"), map[string]any{"thread_id": "main"})
	if c := unread(t, inboxSync(t, bob, filter), room); c != (counts{}) {
		t.Fatalf("after main receipt: %+v", c)
	}
}

func TestPushGateway(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]any
	calls := 0
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if r.URL.Path != "/_matrix/push/v1/notify" {
			http.NotFound(w, r)
			return
		}
		if calls == 1 { // the first attempt fails: the sender must retry
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		bodies = append(bodies, m)
		fmt.Fprint(w, `{"rejected":[]}`)
	}))
	t.Cleanup(gw.Close)

	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := id.RoomID("!room:hs1.test")
	srv.HS.Membership.SetJoined(room, alice.UserID, true)
	srv.HS.Membership.SetJoined(room, bob.UserID, true)

	pusher := map[string]any{"pushkey": "key1", "kind": "http", "app_id": "com.example.app", "app_display_name": "App",
		"device_display_name": "Phone", "lang": "en", "data": map[string]any{"url": gw.URL + "/_matrix/push/v1/notify", "extra": "x"}}
	wantErr(t, bob.Do(t, http.MethodPost, "pushers/set", map[string]any{"pushkey": "k", "kind": "http", "app_id": "a", "app_display_name": "A",
		"device_display_name": "D", "lang": "en", "data": map[string]any{}}), 400, "M_MISSING_PARAM")
	wantErr(t, bob.Do(t, http.MethodPost, "pushers/set", map[string]any{"kind": "http"}), 400, "M_MISSING_PARAM")
	wantErr(t, bob.Do(t, http.MethodPost, "pushers/set", map[string]any{"pushkey": "k", "kind": "http", "app_id": "a", "app_display_name": "A",
		"device_display_name": "D", "lang": "en", "data": map[string]any{"url": "ftp://x/y"}}), 400, "M_INVALID_PARAM")
	bob.MustDo(t, http.MethodPost, "pushers/set", pusher)
	res := bob.MustDo(t, http.MethodGet, "pushers", nil)
	ps := res.JSON["pushers"].([]any)
	if len(ps) != 1 || ps[0].(map[string]any)["pushkey"] != "key1" || ps[0].(map[string]any)["data"].(map[string]any)["extra"] != "x" {
		t.Fatalf("pushers: %s", res.Body)
	}
	if ps := alice.MustDo(t, http.MethodGet, "pushers", nil).JSON["pushers"].([]any); len(ps) != 0 {
		t.Fatal("alice sees bob's pusher")
	}

	sendEvent(t, srv, room, alice.UserID, "$p1", 1, map[string]any{"msgtype": "m.text", "body": "hi @bob:hs1.test",
		"m.mentions": map[string]any{"user_ids": []string{"@bob:hs1.test"}}})
	waitFor(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) == 1 })
	mu.Lock()
	n := bodies[0]["notification"].(map[string]any)
	c := calls
	mu.Unlock()
	if c != 2 {
		t.Fatalf("gateway calls = %d, want 2 (one failure, one retry)", c)
	}
	dev := n["devices"].([]any)[0].(map[string]any)
	if n["event_id"] != "$p1" || n["room_id"] != string(room) || n["sender"] != string(alice.UserID) || n["type"] != "m.room.message" ||
		n["room_name"] != "Test room" || n["prio"] != "high" || n["counts"].(map[string]any)["unread"] != float64(1) {
		t.Fatalf("notification: %v", n)
	}
	if dev["pushkey"] != "key1" || dev["app_id"] != "com.example.app" || dev["tweaks"].(map[string]any)["highlight"] != true ||
		dev["data"].(map[string]any)["url"] != nil || dev["data"].(map[string]any)["extra"] != "x" {
		t.Fatalf("device: %v", dev)
	}
	// kind null deletes the pusher: no more pushes.
	bob.MustDo(t, http.MethodPost, "pushers/set", map[string]any{"pushkey": "key1", "app_id": "com.example.app", "kind": nil})
	if ps := bob.MustDo(t, http.MethodGet, "pushers", nil).JSON["pushers"].([]any); len(ps) != 0 {
		t.Fatal("pusher not deleted")
	}
	// A pusher of another user with the same app ID and pushkey replaces bob's unless append is set.
	bob.MustDo(t, http.MethodPost, "pushers/set", pusher)
	alice.MustDo(t, http.MethodPost, "pushers/set", pusher)
	if ps := bob.MustDo(t, http.MethodGet, "pushers", nil).JSON["pushers"].([]any); len(ps) != 0 {
		t.Fatal("bob's pusher survived alice taking the pushkey")
	}
	appended := map[string]any{}
	for k, v := range pusher {
		appended[k] = v
	}
	appended["append"] = true
	bob.MustDo(t, http.MethodPost, "pushers/set", appended)
	if ps := alice.MustDo(t, http.MethodGet, "pushers", nil).JSON["pushers"].([]any); len(ps) != 1 {
		t.Fatal("append removed alice's pusher")
	}
}

// newGateway starts a push gateway that answers 503 until up() and then 200,
// signalling got for every accepted push.
func newGateway(t *testing.T, up func() bool, got chan<- struct{}) string {
	var mu sync.Mutex
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !up() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{}`)
		got <- struct{}{}
	}))
	t.Cleanup(gw.Close)
	return gw.URL
}

// TestPushRuleChangesApply checks that rule changes take effect for the next
// event (the compiled ruleset cache is dropped on change).
func TestPushRuleChangesApply(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := id.RoomID("!room:hs1.test")
	for _, u := range []id.UserID{alice.UserID, bob.UserID, "@carol:hs1.test"} {
		srv.HS.Membership.SetJoined(room, u, true)
	}
	msg := map[string]any{"msgtype": "m.text", "body": "plain"}
	sendEvent(t, srv, room, alice.UserID, "$a", 1, msg)
	if c := unread(t, inboxSync(t, bob, nil), room); c != (counts{1, 0}) {
		t.Fatalf("before change: %+v", c)
	}
	bob.MustDo(t, http.MethodPut, "pushrules/global/underride/.m.rule.message/actions", map[string]any{"actions": []any{}})
	sendEvent(t, srv, room, alice.UserID, "$b", 2, msg)
	if c := unread(t, inboxSync(t, bob, nil), room); c != (counts{1, 0}) {
		t.Fatalf("after silencing .m.rule.message: %+v", c)
	}
	// A sender rule for alice with a highlight wins over the underride.
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("pushrules/global/sender/%s", alice.UserID),
		map[string]any{"actions": []any{"notify", map[string]any{"set_tweak": "highlight"}}})
	sendEvent(t, srv, room, alice.UserID, "$c", 3, msg)
	if c := unread(t, inboxSync(t, bob, nil), room); c != (counts{2, 1}) {
		t.Fatalf("after sender rule: %+v", c)
	}
	// The master rule silences everything.
	bob.MustDo(t, http.MethodPut, "pushrules/global/override/.m.rule.master/enabled", map[string]any{"enabled": true})
	sendEvent(t, srv, room, alice.UserID, "$d", 4, map[string]any{"msgtype": "m.text", "body": "@bob:hs1.test",
		"m.mentions": map[string]any{"user_ids": []string{"@bob:hs1.test"}}})
	if c := unread(t, inboxSync(t, bob, nil), room); c != (counts{2, 1}) {
		t.Fatalf("after enabling master: %+v", c)
	}
}

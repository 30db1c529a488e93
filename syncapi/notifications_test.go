package syncapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
)

type counts struct{ n, h int }

func unread(t *testing.T, s *syncResp, room id.RoomID) counts {
	t.Helper()
	jr, ok := s.Rooms.Join[room]
	if !ok || jr.UnreadNotifications == nil {
		return counts{-1, -1}
	}
	return counts{jr.UnreadNotifications.NotificationCount, jr.UnreadNotifications.HighlightCount}
}

func mention(body string, users ...id.UserID) map[string]any {
	return map[string]any{"msgtype": "m.text", "body": body, "m.mentions": map[string]any{"user_ids": users}}
}

func TestNotificationCounts(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("profile/%s/displayname", bob.UserID), map[string]any{"displayname": "Bobby"})
	bob2 := login(t, bob)
	room := newRoom(t, alice, bob, carol)
	b1 := inboxSync(t, bob, nil)
	b2 := inboxSync(t, bob2, nil)
	if c := unread(t, b1, room); c != (counts{}) {
		t.Fatalf("initial counts %+v", c)
	}
	// Bob's other device long-polls and sees the count rise.
	sendMsg(t, alice, room, text("hello all"))
	b2 = waitCounts(t, bob2, room, counts{1, 0}, map[string]string{"since": b2.NextBatch, "timeout": "2000"})

	m2 := sendMsg(t, alice, room, mention("hey @bob:hs1.test", bob.UserID))
	m3 := sendMsg(t, alice, room, text("Bobby, look"))
	sendMsg(t, alice, room, map[string]any{"msgtype": "m.notice", "body": "bot says hi"})
	sendMsg(t, bob, room, text("my own message"))
	// Counts: 3 messages (the notice is suppressed, own messages never count), 2 highlights.
	waitCounts(t, bob, room, counts{3, 2}, nil)
	waitCounts(t, alice, room, counts{1, 0}, nil)

	// /notifications lists them newest first, only=highlight filters.
	res := bob.MustDo(t, http.MethodGet, "notifications", nil)
	ns := res.JSON["notifications"].([]any)
	if _, ok := ns[0].(map[string]any)["profile_tag"]; !ok {
		t.Fatalf("notification without profile_tag: %s", res.Body)
	}
	if len(ns) != 3 || ns[0].(map[string]any)["event"].(map[string]any)["event_id"] != m3 || ns[0].(map[string]any)["read"] != false ||
		ns[0].(map[string]any)["room_id"] != string(room) {
		t.Fatalf("notifications: %s", res.Body)
	}
	res = bob.MustDo(t, http.MethodGet, "notifications?only=highlight&limit=1", nil)
	if ns := res.JSON["notifications"].([]any); len(ns) != 1 || res.JSON["next_token"] == nil {
		t.Fatalf("highlight page 1: %s", res.Body)
	}
	res = bob.MustDo(t, http.MethodGet, "notifications?only=highlight&limit=1&from="+res.JSON["next_token"].(string), nil)
	if ns := res.JSON["notifications"].([]any); len(ns) != 1 || ns[0].(map[string]any)["event"].(map[string]any)["event_id"] != m2 {
		t.Fatalf("highlight page 2: %s", res.Body)
	}
	wantErr(t, bob.Do(t, http.MethodGet, "notifications?limit=x", nil), 400, "M_INVALID_PARAM")

	// A redacted event is listed redacted: its content is not kept elsewhere.
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/redact/%s/r1", room, m2), map[string]any{})
	res = bob.MustDo(t, http.MethodGet, "notifications?only=highlight", nil)
	for _, n := range res.JSON["notifications"].([]any) {
		ev := n.(map[string]any)["event"].(map[string]any)
		if ev["event_id"] == m2 {
			if body := ev["content"].(map[string]any)["body"]; body != nil {
				t.Fatalf("redacted notification still has its body %q: %s", body, res.Body)
			}
		}
	}

	// A receipt on one device resets the counts on every device.
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", room, m3), map[string]any{})
	s := inboxSync(t, bob2, map[string]string{"since": b2.NextBatch, "timeout": "5000"})
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
	// A private receipt works as well, and the counts stay right afterwards.
	m6 := sendMsg(t, alice, room, text("again"))
	waitCounts(t, bob2, room, counts{1, 0}, nil)
	bob2.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read.private/%s", room, m6), map[string]any{})
	waitCounts(t, bob, room, counts{}, nil)
	sendMsg(t, alice, room, text("and again"))
	waitCounts(t, bob, room, counts{1, 0}, nil)
}

func TestThreadNotificationCounts(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := newRoom(t, alice, bob, carol)
	root := sendMsg(t, alice, room, text("root"))
	thread := map[string]any{"rel_type": "m.thread", "event_id": root}
	sendMsg(t, alice, room, map[string]any{"msgtype": "m.text", "body": "in thread", "m.relates_to": thread})
	t2 := sendMsg(t, alice, room, map[string]any{"msgtype": "m.text", "body": "bob in thread", "m.relates_to": thread,
		"m.mentions": map[string]any{"user_ids": []string{string(bob.UserID)}}})

	// Without the filter flag everything is summed.
	waitCounts(t, bob, room, counts{3, 1}, nil)
	filter := map[string]string{"filter": `{"room":{"timeline":{"unread_thread_notifications":true}}}`}
	s := waitCounts(t, bob, room, counts{1, 0}, filter)
	th := s.Rooms.Join[room].UnreadThreadNotifications[root]
	if th.NotificationCount != 2 || th.HighlightCount != 1 {
		t.Fatalf("thread counts: %s", s.raw)
	}
	// A threaded receipt clears only its thread.
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", room, t2), map[string]any{"thread_id": root})
	s = inboxSync(t, bob, filter)
	if c := unread(t, s, room); c != (counts{1, 0}) || len(s.Rooms.Join[room].UnreadThreadNotifications) != 0 {
		t.Fatalf("after thread receipt: %+v %s", c, s.raw)
	}
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", room, root), map[string]any{"thread_id": "main"})
	if c := unread(t, inboxSync(t, bob, filter), room); c != (counts{}) {
		t.Fatalf("after main receipt: %+v", c)
	}
}

// TestPushRuleChangesApply checks that rule changes take effect for the next
// event (the compiled ruleset cache is dropped on change).
func TestPushRuleChangesApply(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := newRoom(t, alice, bob, carol)
	sendMsg(t, alice, room, text("plain"))
	waitCounts(t, bob, room, counts{1, 0}, nil)
	// Evaluation runs in commit order, so once carol's marker has been
	// counted for alice, every earlier event has been evaluated for bob.
	settled := func(aliceCounts counts) {
		t.Helper()
		sendMsg(t, carol, room, text("marker"))
		waitCounts(t, alice, room, aliceCounts, nil)
	}
	bob.MustDo(t, http.MethodPut, "pushrules/global/underride/.m.rule.message/actions", map[string]any{"actions": []any{}})
	sendMsg(t, alice, room, text("plain"))
	settled(counts{1, 0})
	if c := unread(t, inboxSync(t, bob, nil), room); c != (counts{1, 0}) {
		t.Fatalf("after silencing .m.rule.message: %+v", c)
	}
	// A sender rule for alice with a highlight wins over the underride.
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("pushrules/global/sender/%s", alice.UserID),
		map[string]any{"actions": []any{"notify", map[string]any{"set_tweak": "highlight"}}})
	sendMsg(t, alice, room, text("plain"))
	waitCounts(t, bob, room, counts{2, 1}, nil)
	// The master rule silences everything.
	bob.MustDo(t, http.MethodPut, "pushrules/global/override/.m.rule.master/enabled", map[string]any{"enabled": true})
	sendMsg(t, alice, room, mention("@bob:hs1.test", bob.UserID))
	settled(counts{2, 0})
	if c := unread(t, inboxSync(t, bob, nil), room); c != (counts{2, 1}) {
		t.Fatalf("after enabling master: %+v", c)
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
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("profile/%s/displayname", alice.UserID), map[string]any{"displayname": "Alice A"})
	room := newRoom(t, alice, bob)
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.name/", room), map[string]any{"name": "Test room"})

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

	p1 := sendMsg(t, alice, room, mention("hi @bob:hs1.test", bob.UserID))
	waitFor(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) == 1 })
	mu.Lock()
	n := bodies[0]["notification"].(map[string]any)
	c := calls
	mu.Unlock()
	if c != 2 {
		t.Fatalf("gateway calls = %d, want 2 (one failure, one retry)", c)
	}
	dev := n["devices"].([]any)[0].(map[string]any)
	if n["event_id"] != p1 || n["id"] != p1 || n["room_id"] != string(room) || n["sender"] != string(alice.UserID) || n["type"] != "m.room.message" ||
		n["room_name"] != "Test room" || n["sender_display_name"] != "Alice A" || n["prio"] != "high" ||
		n["counts"].(map[string]any)["unread"] != float64(1) || n["content"].(map[string]any)["body"] != "hi @bob:hs1.test" {
		t.Fatalf("notification: %v", n)
	}
	if dev["pushkey"] != "key1" || dev["app_id"] != "com.example.app" || dev["tweaks"].(map[string]any)["highlight"] != true ||
		dev["data"].(map[string]any)["url"] != nil || dev["data"].(map[string]any)["extra"] != "x" {
		t.Fatalf("device: %v", dev)
	}
	// A read receipt that clears the count sends a badge-only push (counts, no event).
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", room, p1), map[string]any{})
	waitFor(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) == 2 })
	mu.Lock()
	badge := bodies[1]["notification"].(map[string]any)
	mu.Unlock()
	if badge["counts"].(map[string]any)["unread"] != float64(0) || badge["event_id"] != nil || len(badge["devices"].([]any)) != 1 {
		t.Fatalf("badge push: %v", badge)
	}
	// A receipt that changes nothing pushes nothing more.
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", room, p1), map[string]any{})
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	if len(bodies) != 2 {
		t.Fatalf("pushes after an unchanged receipt: %d", len(bodies))
	}
	mu.Unlock()
	// kind null deletes the pusher.
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

// TestInviteNotifies checks .m.rule.invite_for_me: the invitee (not yet a
// member) is notified, and nobody else is.
func TestInviteNotifies(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := newRoom(t, alice, carol)
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/invite", room), map[string]any{"user_id": bob.UserID})
	res := bob.MustDo(t, http.MethodGet, "notifications", nil)
	ns := res.JSON["notifications"].([]any)
	if len(ns) != 1 {
		t.Fatalf("bob's notifications: %s", res.Body)
	}
	ev := ns[0].(map[string]any)["event"].(map[string]any)
	if ev["type"] != "m.room.member" || ev["state_key"] != string(bob.UserID) || ev["content"].(map[string]any)["membership"] != "invite" {
		t.Fatalf("invite notification: %s", res.Body)
	}
	if ns := carol.MustDo(t, http.MethodGet, "notifications", nil).JSON["notifications"].([]any); len(ns) != 0 {
		t.Fatalf("carol notified of bob's invite: %v", ns)
	}
}

// TestNotificationsAcrossRooms pages through /notifications over several
// rooms (newest first, no gaps or repeats) and checks that a receipt in the
// middle of a room's history leaves the later notifications counted.
func TestNotificationsAcrossRooms(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	rooms := []id.RoomID{newRoom(t, alice, bob), newRoom(t, alice, bob), newRoom(t, alice, bob)}
	var sent []string // oldest first
	perRoom := map[id.RoomID][]string{}
	for i := 0; i < 12; i++ {
		room := rooms[(i*7)%len(rooms)]
		content := text(fmt.Sprint("m", i))
		if i%4 == 0 {
			content = mention(fmt.Sprint("hey bob ", i), bob.UserID)
		}
		ev := sendMsg(t, alice, room, content)
		sent = append(sent, ev)
		perRoom[room] = append(perRoom[room], ev)
	}
	var got []string
	from := ""
	for page := 0; page < 10; page++ {
		path := "notifications?limit=5"
		if from != "" {
			path += "&from=" + from
		}
		res := bob.MustDo(t, http.MethodGet, path, nil)
		for _, n := range res.JSON["notifications"].([]any) {
			got = append(got, n.(map[string]any)["event"].(map[string]any)["event_id"].(string))
		}
		next, _ := res.JSON["next_token"].(string)
		if next == "" {
			break
		}
		from = next
	}
	if len(got) != len(sent) {
		t.Fatalf("got %d notifications, want %d: %v", len(got), len(sent), got)
	}
	for i := range got {
		if got[i] != sent[len(sent)-1-i] {
			t.Fatalf("notification %d = %s, want %s (got %v)", i, got[i], sent[len(sent)-1-i], got)
		}
	}
	res := bob.MustDo(t, http.MethodGet, "notifications?only=highlight", nil)
	if n := len(res.JSON["notifications"].([]any)); n != 3 {
		t.Fatalf("highlights: %d: %s", n, res.Body)
	}

	// A receipt at the second of four messages in a room leaves two unread;
	// a later one at the last leaves none. Other rooms keep their counts.
	r0 := rooms[0]
	// Room 0 holds messages 0, 3, 6 and 9 (0 mentions bob), room 1 1, 4, 7, 10.
	waitCounts(t, bob, r0, counts{4, 1}, nil)
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", r0, perRoom[r0][1]), map[string]any{})
	waitCounts(t, bob, r0, counts{2, 0}, nil)
	waitCounts(t, bob, rooms[1], counts{4, 1}, nil)
	res = bob.MustDo(t, http.MethodGet, "notifications?limit=12", nil)
	for _, n := range res.JSON["notifications"].([]any) {
		nm := n.(map[string]any)
		ev := nm["event"].(map[string]any)["event_id"].(string)
		wantRead := ev == perRoom[r0][0] || ev == perRoom[r0][1]
		if nm["read"] != wantRead {
			t.Fatalf("%s read = %v, want %v", ev, nm["read"], wantRead)
		}
	}
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", r0, perRoom[r0][3]), map[string]any{})
	waitCounts(t, bob, r0, counts{}, nil)
}

package adminapi_test

import (
	"net/http"
	"testing"

	"parley/internal/testserver"
)

func TestServerNotices(t *testing.T) {
	srv := testserver.New(t)
	admin := srv.Register(t, "admin")
	makeAdmin(t, srv, admin)
	bob := srv.Register(t, "bob")
	notice := func(c *testserver.Client, user, body string) *testserver.Response {
		return c.Do(t, http.MethodPost, "/_synapse/admin/v1/send_server_notice", map[string]any{
			"user_id": user, "content": map[string]any{"msgtype": "m.text", "body": body}})
	}
	if res := notice(bob, string(bob.UserID), "x"); res.Status != 403 || res.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("non-admin: %d", res.Status)
	}
	res := notice(admin, string(bob.UserID), "maintenance tonight")
	if res.Status != 200 {
		t.Fatalf("notice: %d %s", res.Status, res.Body)
	}
	first := res.JSON["event_id"].(string)
	sync := bob.MustDo(t, http.MethodGet, "sync", nil)
	invites := sync.JSON["rooms"].(map[string]any)["invite"].(map[string]any)
	if len(invites) != 1 {
		t.Fatalf("bob has no notices invite: %s", sync.Body)
	}
	var room string
	for r := range invites {
		room = r
	}
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	second := notice(admin, string(bob.UserID), "done").JSON["event_id"].(string)
	msgs := bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room)+"?dir=b&limit=50", nil)
	seen := map[string]bool{}
	for _, e := range msgs.JSON["chunk"].([]any) {
		seen[e.(map[string]any)["event_id"].(string)] = true
	}
	if !seen[first] || !seen[second] {
		t.Fatalf("notices not in one room: %s", msgs.Body)
	}
	if res := bob.Do(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/t1", room), map[string]any{"msgtype": "m.text", "body": "hi"}); res.Status != 403 {
		t.Fatalf("bob could post in the notices room: %d", res.Status)
	}
	if res := admin.Do(t, http.MethodPut, "/_synapse/admin/v1/send_server_notice/txn1", map[string]any{
		"user_id": bob.UserID, "content": map[string]any{"msgtype": "m.text", "body": "idempotent"}}); res.Status != 200 {
		t.Fatalf("put notice: %d %s", res.Status, res.Body)
	}
	if res := notice(admin, "@nobody:hs1.test", "x"); res.Status != 404 {
		t.Fatalf("unknown user: %d", res.Status)
	}
	if res := notice(admin, "@bob:elsewhere.test", "x"); res.Status != 400 {
		t.Fatalf("remote user: %d", res.Status)
	}
	if res := admin.Do(t, http.MethodPost, "/_synapse/admin/v1/send_server_notice", map[string]any{"user_id": bob.UserID}); res.Status != 400 {
		t.Fatalf("no content: %d", res.Status)
	}
}

// TestServerNoticeRoomLifecycle: the invite to the notices room cannot be
// rejected (M_CANNOT_LEAVE_SERVER_NOTICE_ROOM); once joined the user may leave,
// and the next notice invites them back into the same room.
func TestServerNoticeRoomLifecycle(t *testing.T) {
	srv := testserver.New(t)
	admin := srv.Register(t, "admin")
	makeAdmin(t, srv, admin)
	bob := srv.Register(t, "bob")
	notice := func() {
		admin.MustDo(t, http.MethodPost, "/_synapse/admin/v1/send_server_notice", map[string]any{
			"user_id": bob.UserID, "content": map[string]any{"msgtype": "m.text", "body": "hello"}})
	}
	invitedTo := func() string {
		sync := bob.MustDo(t, http.MethodGet, "sync", nil)
		invites, _ := sync.JSON["rooms"].(map[string]any)["invite"].(map[string]any)
		if len(invites) != 1 {
			t.Fatalf("want one invite: %s", sync.Body)
		}
		for r := range invites {
			return r
		}
		return ""
	}
	notice()
	room := invitedTo()
	leave := testserver.Sprintf("rooms/%s/leave", room)
	if res := bob.Do(t, http.MethodPost, leave, map[string]any{}); res.Status != 403 || res.ErrCode != "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM" {
		t.Fatalf("reject: %d %s", res.Status, res.Body)
	}
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	bob.MustDo(t, http.MethodPost, leave, map[string]any{})
	notice()
	if again := invitedTo(); again != room {
		t.Fatalf("a new notices room %s, want %s", again, room)
	}
}

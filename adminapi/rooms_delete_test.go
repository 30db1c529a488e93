package adminapi_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"parley/internal/testserver"
)

func TestDeleteAndBlockRoom(t *testing.T) {
	srv := testserver.New(t)
	admin := srv.Register(t, "admin")
	makeAdmin(t, srv, admin)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat", "room_alias_name": "doomed"}).JSON["room_id"].(string)
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	msg := send(t, alice, room, "bad content")
	send(t, bob, room, "more")
	r := url.PathEscape(room)

	if res := bob.Do(t, http.MethodDelete, "/_synapse/admin/v2/rooms/"+r, map[string]any{}); res.Status != 403 {
		t.Fatalf("non-admin delete: %d", res.Status)
	}
	res := admin.MustDo(t, http.MethodDelete, "/_synapse/admin/v2/rooms/"+r, map[string]any{"block": true, "purge": false, "new_room_user_id": admin.UserID, "message": "moved"})
	delID := res.JSON["delete_id"].(string)
	var status map[string]any
	for i := 0; i < 100; i++ {
		status = admin.MustDo(t, http.MethodGet, "/_synapse/admin/v2/rooms/delete_status/"+delID, nil).JSON
		if status["status"] == "complete" || status["status"] == "failed" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status["status"] != "complete" {
		t.Fatalf("delete status: %v", status)
	}
	sr := status["shutdown_room"].(map[string]any)
	if len(sr["kicked_users"].([]any)) != 2 || len(sr["local_aliases"].([]any)) != 1 || sr["new_room_id"] == nil {
		t.Fatalf("shutdown: %v", sr)
	}
	if res := admin.MustDo(t, http.MethodGet, "/_synapse/admin/v2/rooms/"+r+"/delete_status", nil); len(res.JSON["results"].([]any)) != 1 {
		t.Fatalf("status by room: %s", res.Body)
	}
	// Members are gone, moved to the new room, the alias is gone, rejoining is blocked.
	if res := admin.MustDo(t, http.MethodGet, "/_synapse/admin/v1/rooms/"+r+"/members", nil); res.JSON["total"].(float64) != 0 {
		t.Fatalf("members after delete: %s", res.Body)
	}
	newRoom := sr["new_room_id"].(string)
	if res := bob.MustDo(t, http.MethodGet, "joined_rooms", nil); len(res.JSON["joined_rooms"].([]any)) != 1 || res.JSON["joined_rooms"].([]any)[0] != newRoom {
		t.Fatalf("bob's rooms: %s", res.Body)
	}
	if res := alice.Do(t, http.MethodGet, testserver.Sprintf("directory/room/%s", "#doomed:hs1.test"), nil); res.Status != 404 {
		t.Fatalf("alias survived: %d", res.Status)
	}
	// Without purge the messages stay (TestPurgeRoom covers purging).
	if res := admin.MustDo(t, http.MethodGet, "/_synapse/admin/v1/rooms/"+r+"/messages?limit=100", nil); !strings.Contains(string(res.Body), msg) {
		t.Fatalf("message gone without purge: %s", res.Body)
	}
	if res := bob.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{}); res.Status != 403 || res.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("join blocked room: %d %s", res.Status, res.Body)
	}
	admin.MustDo(t, http.MethodPut, testserver.Sprintf("directory/room/%s", "#again:hs1.test"), map[string]any{"room_id": room})
	if res := bob.Do(t, http.MethodPost, testserver.Sprintf("join/%s", "#again:hs1.test"), map[string]any{}); res.Status != 403 {
		t.Fatalf("join blocked room by alias: %d %s", res.Status, res.Body)
	}
	if res := admin.MustDo(t, http.MethodGet, "/_synapse/admin/v1/rooms/"+r+"/block", nil); res.JSON["block"] != true || res.JSON["user_id"] != string(admin.UserID) {
		t.Fatalf("block status: %s", res.Body)
	}
	admin.MustDo(t, http.MethodPut, "/_synapse/admin/v1/rooms/"+r+"/block", map[string]any{"block": false})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	send(t, bob, room, "room works again")
	if res := admin.Do(t, http.MethodGet, "/_synapse/admin/v2/rooms/delete_status/nope", nil); res.Status != 404 {
		t.Fatalf("unknown delete id: %d", res.Status)
	}
	if n := len(auditEntries(t, admin, "action=room_deletion")); n != 1 {
		t.Fatalf("room deletion audit: %d", n)
	}
}

package federation_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/tidwall/gjson"
)

// TestRestrictedRoomRemoteJoin: a user of another server joins a
// restricted room once they are in the allowed room. The resident server
// names one of its members that may invite in make_join's template
// (join_authorised_via_users_server) and countersigns the join in send_join.
func TestRestrictedRoomRemoteJoin(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	allowed := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Allowed"})
	// invite needs power 50 here: an authoriser is needed, not just anyone.
	room := createRoom(t, alice, map[string]any{"preset": "private_chat", "room_version": "10", "initial_state": []any{map[string]any{
		"type": "m.room.join_rules", "state_key": "", "content": map[string]any{"join_rule": "restricted",
			"allow": []any{map[string]any{"type": "m.room_membership", "room_id": allowed, "via": []string{"hs1.test"}}}}}}})
	join := func() *http.Response {
		res := bob.Do(t, http.MethodPost, "join/"+url.PathEscape(string(room))+"?server_name=hs1.test", map[string]any{})
		return &http.Response{StatusCode: res.Status}
	}
	if res := join(); res.StatusCode != http.StatusForbidden {
		t.Fatalf("join before the allowed room: %d", res.StatusCode)
	}
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(allowed))+"?server_name=hs1.test", map[string]any{})
	if res := join(); res.StatusCode != http.StatusOK {
		t.Fatalf("join after the allowed room: %d", res.StatusCode)
	}
	if m := membership(t, alice, room, bob.UserID); m != "join" {
		t.Fatalf("bob's membership on hs1: %q", m)
	}
	ev := alice.MustDo(t, http.MethodGet, "rooms/"+url.PathEscape(string(room))+"/state/m.room.member/"+url.PathEscape(string(bob.UserID)), nil)
	if ev.JSON["join_authorised_via_users_server"] != string(alice.UserID) {
		t.Fatalf("bob's join content: %s", ev.Body)
	}
	// hs2 keeps the countersigned copy that send_join returned.
	stored, err := hs2.HS.Store.CurrentStateEvent(context.Background(), room, "m.room.member", string(bob.UserID))
	if err != nil || !gjson.GetBytes(stored.JSON, "signatures.hs1\\.test").Exists() {
		t.Fatalf("bob's join on hs2 lacks hs1's signature: %v %s", err, stored.JSON)
	}
}

// TestRestrictedRoomJoinThroughAnotherServer: a restricted room this server
// is in but none of whose members here may invite: a local user allowed in
// joins through a server whose member can vouch (make_join/send_join).
func TestRestrictedRoomJoinThroughAnotherServer(t *testing.T) {
	hs1, hs2 := pair(t)
	charlie := hs2.Register(t, "charlie")
	alice := hs1.Register(t, "alice")
	bob := hs1.Register(t, "bob")
	allowed := createRoom(t, charlie, map[string]any{"preset": "public_chat", "name": "Space"})
	room := createRoom(t, charlie, map[string]any{"preset": "public_chat", "room_version": "10", "initial_state": []any{map[string]any{
		"type": "m.room.join_rules", "state_key": "", "content": map[string]any{"join_rule": "restricted",
			"allow": []any{map[string]any{"type": "m.room_membership", "room_id": allowed, "via": []string{"hs2.test"}}}}}}})
	charlie.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(room))+"/invite", map[string]any{"user_id": alice.UserID})
	eventually(t, "alice's invite", func() bool { return invitedTo(t, alice, room) })
	alice.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(room))+"?server_name=hs2.test", map[string]any{})
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(allowed))+"?server_name=hs2.test", map[string]any{})
	eventually(t, "bob in the allowed room on hs2", func() bool { return membership(t, charlie, allowed, bob.UserID) == "join" })
	// hs1 is in the room (alice), but alice may not invite: hs2 vouches.
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(room)), map[string]any{})
	eventually(t, "bob's join on hs2", func() bool { return membership(t, charlie, room, bob.UserID) == "join" })
	ev := charlie.MustDo(t, http.MethodGet, "rooms/"+url.PathEscape(string(room))+"/state/m.room.member/"+url.PathEscape(string(bob.UserID)), nil)
	if ev.JSON["join_authorised_via_users_server"] != string(charlie.UserID) {
		t.Fatalf("bob's join: %s", ev.Body)
	}
	if m := membership(t, alice, room, bob.UserID); m != "join" {
		t.Fatalf("bob's membership on hs1: %q", m)
	}
}

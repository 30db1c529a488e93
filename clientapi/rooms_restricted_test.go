package clientapi_test

import (
	"net/http"
	"testing"

	"parley/internal/testserver"
)

// A restricted room admits members of the rooms its join rule allows, with a
// join authorised by a local member who may invite; others are refused.
func TestRestrictedJoin(t *testing.T) {
	for _, version := range []string{"8", "10", "12"} {
		t.Run("v"+version, func(t *testing.T) {
			srv := testserver.New(t)
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")

			space := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{
				"preset": "public_chat", "room_version": version, "creation_content": map[string]any{"type": "m.space"},
			}).JSON["room_id"].(string)
			room := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{
				"preset": "private_chat", "room_version": version,
				"initial_state": []any{map[string]any{"type": "m.room.join_rules", "state_key": "", "content": map[string]any{
					"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": space}},
				}}},
			}).JSON["room_id"].(string)

			res := bob.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
			if res.Status != http.StatusForbidden || res.ErrCode != "M_FORBIDDEN" {
				t.Fatalf("join without space membership: want 403 M_FORBIDDEN, got %d %s", res.Status, res.Body)
			}
			bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", space), map[string]any{})
			bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})

			res = bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.member/%s", room, bob.UserID), nil)
			if res.JSON["membership"] != "join" || res.JSON["join_authorised_via_users_server"] != string(alice.UserID) {
				t.Fatalf("bob's join: %s", res.Body)
			}
			// A new displayname as a join -> join state event: a stray
			// join_authorised_via_users_server in it is dropped, not refused.
			bob.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.member/%s", room, bob.UserID), map[string]any{
				"membership": "join", "displayname": "Bobby", "join_authorised_via_users_server": "unused",
			})
			res = bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.member/%s", room, bob.UserID), nil)
			if _, ok := res.JSON["join_authorised_via_users_server"]; ok || res.JSON["displayname"] != "Bobby" {
				t.Fatalf("bob's displayname change: %s", res.Body)
			}
		})
	}
}

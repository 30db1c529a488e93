package clientapi_test

import (
	"net/http"
	"net/url"
	"testing"

	"parley/internal/testserver"
)

// TestRoomSummary: GET /v1/room_summary for members, non-members, banned
// users and unauthenticated callers, by room ID and by alias, with the
// fields of the spec's RoomSummary.
func TestRoomSummary(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	anon := srv.Anon()
	summary := func(c *testserver.Client, target string) *testserver.Response {
		return c.Do(t, http.MethodGet, "/_matrix/client/v1/room_summary/"+url.PathEscape(target), nil)
	}

	space := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Space", "room_alias_name": "space",
		"creation_content": map[string]any{"type": "m.space"}, "topic": "all of it"})
	res := summary(alice, space)
	if res.Status != 200 || res.JSON["room_id"] != space || res.JSON["name"] != "Space" || res.JSON["topic"] != "all of it" ||
		res.JSON["room_type"] != "m.space" || res.JSON["join_rule"] != "public" || res.JSON["membership"] != "join" ||
		res.JSON["num_joined_members"] != float64(1) || res.JSON["room_version"] == nil || res.JSON["canonical_alias"] != "#space:"+srv.Cfg.ServerName {
		t.Fatalf("member's summary: %d %s", res.Status, res.Body)
	}
	if _, ok := res.JSON["allowed_room_ids"]; ok {
		t.Fatalf("allowed_room_ids on a public room: %s", res.Body)
	}
	// By alias; bob has never been in it (no membership), an anonymous
	// caller may preview a public room too.
	res = summary(bob, "#space:"+srv.Cfg.ServerName)
	if res.Status != 200 || res.JSON["room_id"] != space {
		t.Fatalf("summary by alias: %d %s", res.Status, res.Body)
	}
	if _, ok := res.JSON["membership"]; ok {
		t.Fatalf("membership for a non-member: %s", res.Body)
	}
	if res = summary(anon, space); res.Status != 200 || res.JSON["membership"] != nil {
		t.Fatalf("anonymous summary of a public room: %d %s", res.Status, res.Body)
	}

	// A restricted room lists the rooms that allow joining.
	restricted := createRoom(t, alice, map[string]any{"preset": "public_chat", "room_version": "8", "initial_state": []any{map[string]any{
		"type": "m.room.join_rules", "state_key": "",
		"content": map[string]any{"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": space}}},
	}}})
	if res = summary(alice, restricted); res.Status != 200 || res.JSON["join_rule"] != "restricted" {
		t.Fatalf("restricted summary: %d %s", res.Status, res.Body)
	} else if ids, _ := res.JSON["allowed_room_ids"].([]any); len(ids) != 1 || ids[0] != space {
		t.Fatalf("allowed_room_ids: %s", res.Body)
	}
	// bob is not in the space yet: hidden; once he joins it, visible.
	wantErr(t, summary(bob, restricted), 404, "M_NOT_FOUND")
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(space), map[string]any{})
	if res = summary(bob, restricted); res.Status != 200 {
		t.Fatalf("restricted summary for a member of the allowed room: %d %s", res.Status, res.Body)
	}
	wantErr(t, summary(anon, restricted), 404, "M_NOT_FOUND")

	// A private room: hidden from outsiders, shown to the invitee with
	// their membership; a banned user no longer sees it.
	private := createRoom(t, alice, map[string]any{"preset": "private_chat", "name": "Secret"})
	wantErr(t, summary(bob, private), 404, "M_NOT_FOUND")
	wantErr(t, summary(anon, private), 404, "M_NOT_FOUND")
	alice.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(private)+"/invite", map[string]any{"user_id": bob.UserID})
	if res = summary(bob, private); res.Status != 200 || res.JSON["membership"] != "invite" || res.JSON["name"] != "Secret" {
		t.Fatalf("invitee's summary: %d %s", res.Status, res.Body)
	}
	alice.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(private)+"/ban", map[string]any{"user_id": bob.UserID})
	wantErr(t, summary(bob, private), 404, "M_NOT_FOUND")

	// Unknown rooms and aliases, bad identifiers, bad tokens.
	wantErr(t, summary(alice, "!nope:"+srv.Cfg.ServerName), 404, "M_NOT_FOUND")
	wantErr(t, summary(alice, "#nope:"+srv.Cfg.ServerName), 404, "M_NOT_FOUND")
	wantErr(t, summary(alice, "neither"), 400, "M_INVALID_PARAM")
	bad := &testserver.Client{S: srv, AccessToken: "not-a-token"}
	wantErr(t, summary(bad, space), 401, "M_UNKNOWN_TOKEN")
}

package clientapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"parley/internal/testserver"
)

func stateContent(t *testing.T, c *testserver.Client, room, evType string) map[string]any {
	t.Helper()
	return c.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/%s/", room, evType), nil).JSON
}

func TestRoomUpgrade(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	hs := srv.HS.Config.ServerName
	old := createRoom(t, alice, map[string]any{"preset": "public_chat", "visibility": "public", "room_version": "10",
		"name": "Old name", "topic": "Old topic", "room_alias_name": "upgrade-me",
		"initial_state": []any{map[string]any{"type": "m.room.encryption", "state_key": "", "content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}}})
	member(t, bob, old, "join", nil)
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("user/%s/rooms/%s/tags/u.work", bob.UserID, old), map[string]any{"order": 0.5})
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.history_visibility/", old), map[string]any{"history_visibility": "world_readable"})

	// Errors first.
	wantErr(t, bob.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/upgrade", old), map[string]any{"new_version": "11"}), http.StatusForbidden, "M_FORBIDDEN")
	wantErr(t, alice.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/upgrade", old), map[string]any{"new_version": "999"}), http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION")
	wantErr(t, alice.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/upgrade", old), map[string]any{}), http.StatusBadRequest, "M_MISSING_PARAM")
	wantErr(t, alice.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/upgrade", old), map[string]any{"new_version": 11}), http.StatusBadRequest, "M_BAD_JSON")

	wantErr(t, alice.Do(t, http.MethodPost, "rooms/!unknown:nowhere/upgrade", map[string]any{"new_version": "11"}), http.StatusNotFound, "M_NOT_FOUND")
	res := alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/upgrade", old), map[string]any{"new_version": "11"})
	newRoom, _ := res.JSON["replacement_room"].(string)
	if newRoom == "" || newRoom == old {
		t.Fatalf("replacement_room: %s", res.Body)
	}
	// The old room is tombstoned and ordinary members are muted.
	if tomb := stateContent(t, alice, old, "m.room.tombstone"); tomb["replacement_room"] != newRoom {
		t.Fatalf("tombstone: %v", tomb)
	}
	if pl := stateContent(t, alice, old, "m.room.power_levels"); pl["events_default"].(float64) < 50 || pl["invite"].(float64) < 50 {
		t.Fatalf("old power levels not restricted: %v", pl)
	}
	if res := bob.Do(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/up1", old), map[string]any{"msgtype": "m.text", "body": "hi"}); res.Status != http.StatusForbidden {
		t.Fatalf("bob still talks in the old room: %d %s", res.Status, res.Body)
	}
	// The new room.
	create := stateContent(t, alice, newRoom, "m.room.create")
	if create["room_version"] != "11" || create["predecessor"].(map[string]any)["room_id"] != old {
		t.Fatalf("create: %v", create)
	}
	// The predecessor names the old room's tombstone (v11 room IDs are not derived from the create event).
	var tombID any
	var oldState []map[string]any
	if err := json.Unmarshal(alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state", old), nil).Body, &oldState); err != nil {
		t.Fatal(err)
	}
	for _, e := range oldState {
		if e["type"] == "m.room.tombstone" {
			tombID = e["event_id"]
		}
	}
	if tombID == nil || create["predecessor"].(map[string]any)["event_id"] != tombID {
		t.Fatalf("predecessor %v, tombstone %v", create["predecessor"], tombID)
	}
	for evType, want := range map[string][2]string{
		"m.room.name": {"name", "Old name"}, "m.room.topic": {"topic", "Old topic"},
		"m.room.join_rules": {"join_rule", "public"}, "m.room.history_visibility": {"history_visibility", "world_readable"},
		"m.room.encryption": {"algorithm", "m.megolm.v1.aes-sha2"}, "m.room.canonical_alias": {"alias", "#upgrade-me:" + hs},
	} {
		if got := stateContent(t, alice, newRoom, evType)[want[0]]; got != want[1] {
			t.Errorf("%s.%s = %v, want %s", evType, want[0], got, want[1])
		}
	}
	if pl := stateContent(t, alice, newRoom, "m.room.power_levels"); pl["users"].(map[string]any)[string(alice.UserID)] != float64(100) || pl["events_default"] != float64(0) {
		t.Fatalf("new power levels: %v", pl)
	}
	// The alias moved; the directory lists the new room instead of the old one.
	if got := alice.MustDo(t, http.MethodGet, "directory/room/%23upgrade-me:"+hs, nil).JSON["room_id"]; got != newRoom {
		t.Fatalf("alias points to %v", got)
	}
	if vis := alice.MustDo(t, http.MethodGet, testserver.Sprintf("directory/list/room/%s", old), nil).JSON["visibility"]; vis != "private" {
		t.Fatalf("old room still published: %v", vis)
	}
	if vis := alice.MustDo(t, http.MethodGet, testserver.Sprintf("directory/list/room/%s", newRoom), nil).JSON["visibility"]; vis != "public" {
		t.Fatalf("new room not published: %v", vis)
	}
	if ca := stateContent(t, alice, old, "m.room.canonical_alias"); ca["alias"] != nil {
		t.Fatalf("old room keeps the canonical alias: %v", ca)
	}
	// bob can join the new room.
	if res := member(t, bob, newRoom, "join", nil); res.Status != http.StatusOK {
		t.Fatalf("join new room: %d %s", res.Status, res.Body)
	}
	// ... and finds his tags of the old room on it.
	tags := bob.MustDo(t, http.MethodGet, testserver.Sprintf("user/%s/rooms/%s/tags", bob.UserID, newRoom), nil)
	if tag, _ := tags.JSON["tags"].(map[string]any)["u.work"].(map[string]any); tag["order"] != 0.5 {
		t.Fatalf("tags on the new room: %s", tags.Body)
	}
	// Upgrading again to v12 (creators are privileged and may not be in users).
	res = alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/upgrade", newRoom), map[string]any{"new_version": "12"})
	v12 := res.JSON["replacement_room"].(string)
	if pl := stateContent(t, alice, v12, "m.room.power_levels"); pl["users"].(map[string]any)[string(alice.UserID)] != nil {
		t.Fatalf("v12 power levels list the creator: %v", pl)
	}
	if got := stateContent(t, alice, v12, "m.room.name")["name"]; got != "Old name" {
		t.Fatalf("v12 name: %v", got)
	}
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/up2", v12), map[string]any{"msgtype": "m.text", "body": "hi"})
	// And back down to v11 from v12: alice must get her power back in users.
	res = alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/upgrade", v12), map[string]any{"new_version": "11"})
	if pl := stateContent(t, alice, res.JSON["replacement_room"].(string), "m.room.power_levels"); pl["users"].(map[string]any)[string(alice.UserID)] != float64(100) {
		t.Fatalf("v11 power levels after v12: %v", pl)
	}
}

func TestRoomUpgradeInviteOnly(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	dave := srv.Register(t, "dave")
	old := createRoom(t, alice, map[string]any{"preset": "private_chat", "invite": []string{string(bob.UserID), string(carol.UserID), string(dave.UserID)}})
	member(t, bob, old, "join", nil)
	member(t, carol, old, "join", nil)
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/ban", old), map[string]any{"user_id": carol.UserID})
	newRoom := alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/upgrade", old), map[string]any{"new_version": "11"}).JSON["replacement_room"].(string)
	for who, want := range map[*testserver.Client]string{bob: "invite", carol: "ban", dave: "invite"} {
		if got := membershipOf(t, alice, newRoom, string(who.UserID)); got != want {
			t.Errorf("%s in the new room: %q want %q", who.UserID, got, want)
		}
	}
	if res := member(t, bob, newRoom, "join", nil); res.Status != http.StatusOK {
		t.Fatalf("bob joins the invite-only replacement: %d %s", res.Status, res.Body)
	}
	if ga := stateContent(t, alice, newRoom, "m.room.join_rules"); ga["join_rule"] != "invite" {
		t.Fatalf("join rule: %v", ga)
	}
}

// TestInitialStateReplacesPresetEvents: state that initial_state sets (as an
// upgrade's copied state does) is not also sent by the preset first, so the
// room has one event of the type, with initial_state's content.
func TestInitialStateReplacesPresetEvents(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	room := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "private_chat", "initial_state": []any{
		map[string]any{"type": "m.room.history_visibility", "content": map[string]any{"history_visibility": "joined"}},
		map[string]any{"type": "m.room.join_rules", "content": map[string]any{"join_rule": "public"}},
	}}).JSON["room_id"].(string)
	res := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages?dir=b&limit=50", room), nil)
	n := map[string]int{}
	for _, e := range res.JSON["chunk"].([]any) {
		n[e.(map[string]any)["type"].(string)]++
	}
	if n["m.room.history_visibility"] != 1 || n["m.room.join_rules"] != 1 || n["m.room.guest_access"] != 1 {
		t.Fatalf("events per type: %v", n)
	}
	if hv := stateContent(t, alice, room, "m.room.history_visibility"); hv["history_visibility"] != "joined" {
		t.Fatalf("history visibility: %v", hv)
	}
}

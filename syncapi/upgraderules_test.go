package syncapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"parley/internal/testserver"
)

// TestPushRulesFollowRoomUpgrade: a user's room push rule for an upgraded
// room is copied to the new room when they join it, for the upgrader (joined
// by the upgrade) and for a member who follows later; a rule already set for
// the new room is kept.
func TestPushRulesFollowRoomUpgrade(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := newRoom(t, alice, bob, carol)
	for _, c := range []*testserver.Client{alice, bob, carol} {
		c.MustDo(t, http.MethodPut, testserver.Sprintf("pushrules/global/room/%s", room), map[string]any{"actions": []string{"dont_notify"}})
	}
	newRoom := alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/upgrade", room), map[string]any{"new_version": "11"}).JSON["replacement_room"].(string)
	rule := testserver.Sprintf("pushrules/global/room/%s", newRoom)
	if res := alice.Do(t, http.MethodGet, rule, nil); res.Status != http.StatusOK || res.JSON["actions"].([]any)[0] != "dont_notify" {
		t.Fatalf("upgrader's rule not copied: %d %s", res.Status, res.Body)
	}
	if res := bob.Do(t, http.MethodGet, rule, nil); res.Status != http.StatusNotFound {
		t.Fatalf("bob has a rule before joining: %d %s", res.Status, res.Body)
	}
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", newRoom), map[string]any{})
	if res := bob.Do(t, http.MethodGet, rule, nil); res.Status != http.StatusOK || res.JSON["actions"].([]any)[0] != "dont_notify" {
		t.Fatalf("bob's rule not copied on join: %d %s", res.Status, res.Body)
	}
	// Carol set her own rule for the new room before joining: it stays.
	carol.MustDo(t, http.MethodPut, rule, map[string]any{"actions": []string{"notify"}})
	carol.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", newRoom), map[string]any{})
	if res := carol.MustDo(t, http.MethodGet, rule, nil); res.JSON["actions"].([]any)[0] != "notify" {
		t.Fatalf("carol's own rule overwritten: %s", res.Body)
	}
	list := carol.MustDo(t, http.MethodGet, "pushrules/global/room/", nil)
	var rules []map[string]any
	if err := json.Unmarshal(list.Body, &rules); err != nil {
		t.Fatal(err)
	}
	var n int
	for _, r := range rules {
		if r["rule_id"] == newRoom {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("want one rule for the new room: %s", list.Body)
	}
}

// TestDirectRoomFollowsUpgrade: a room listed in a member's m.direct stays a
// direct chat after an upgrade: the new room is added next to the old one.
func TestDirectRoomFollowsUpgrade(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := newRoom(t, alice, bob)
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("user/%s/account_data/m.direct", alice.UserID), map[string]any{string(bob.UserID): []string{string(room)}})
	newRoom := alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/upgrade", room), map[string]any{"new_version": "11"}).JSON["replacement_room"].(string)
	res := alice.MustDo(t, http.MethodGet, testserver.Sprintf("user/%s/account_data/m.direct", alice.UserID), nil)
	rooms, _ := res.JSON[string(bob.UserID)].([]any)
	if len(rooms) != 2 || rooms[0] != string(room) || rooms[1] != newRoom {
		t.Fatalf("m.direct after upgrade: %s", res.Body)
	}
	// Bob had no m.direct: joining the new room writes none.
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", newRoom), map[string]any{})
	if r := bob.Do(t, http.MethodGet, testserver.Sprintf("user/%s/account_data/m.direct", bob.UserID), nil); r.Status != http.StatusNotFound {
		t.Fatalf("bob's m.direct: %d %s", r.Status, r.Body)
	}
}

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

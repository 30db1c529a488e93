package syncapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"parley/internal/testserver"
)

type ruleset struct {
	Override  []rule `json:"override"`
	Content   []rule `json:"content"`
	Room      []rule `json:"room"`
	Sender    []rule `json:"sender"`
	Underride []rule `json:"underride"`
}

type rule struct {
	RuleID     string            `json:"rule_id"`
	Default    bool              `json:"default"`
	Enabled    bool              `json:"enabled"`
	Actions    []json.RawMessage `json:"actions"`
	Conditions []json.RawMessage `json:"conditions"`
	Pattern    *string           `json:"pattern"`
}

func ids(rs []rule) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.RuleID
	}
	return out
}

func getRules(t *testing.T, c *testserver.Client) ruleset {
	t.Helper()
	res := c.MustDo(t, http.MethodGet, "pushrules/", nil)
	var out struct {
		Global ruleset `json:"global"`
	}
	if err := json.Unmarshal(res.Body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Global
}

func eq(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPushRulesDefaults(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	rs := getRules(t, alice)
	wantOverride := []string{".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event",
		".m.rule.is_user_mention", ".m.rule.contains_display_name", ".m.rule.is_room_mention", ".m.rule.roomnotif",
		".m.rule.tombstone", ".m.rule.reaction", ".m.rule.room.server_acl", ".m.rule.suppress_edits"}
	wantUnderride := []string{".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one", ".m.rule.message", ".m.rule.encrypted"}
	if !eq(ids(rs.Override), wantOverride) {
		t.Fatalf("override = %v", ids(rs.Override))
	}
	if !eq(ids(rs.Underride), wantUnderride) {
		t.Fatalf("underride = %v", ids(rs.Underride))
	}
	if len(rs.Content) != 1 || rs.Content[0].RuleID != ".m.rule.contains_user_name" || *rs.Content[0].Pattern != "alice" {
		t.Fatalf("content = %+v", rs.Content)
	}
	if rs.Room == nil || rs.Sender == nil || len(rs.Room) != 0 {
		t.Fatal("room/sender must be empty lists")
	}
	if rs.Override[0].Enabled || !rs.Override[1].Enabled || !rs.Override[0].Default {
		t.Fatal("master must be a disabled default rule, others enabled")
	}
	// invite_for_me and is_user_mention name the user.
	if got := string(rs.Override[2].Conditions[2]); got != `{"key":"state_key","kind":"event_match","pattern":"@alice:hs1.test"}` {
		t.Fatalf("invite_for_me condition: %s", got)
	}
	if got := string(rs.Override[4].Conditions[0]); got != `{"kind":"event_property_contains","key":"content.m\\.mentions.user_ids","value":"@alice:hs1.test"}` {
		t.Fatalf("is_user_mention condition: %s", got)
	}
	// tombstone keeps its empty state_key pattern.
	if got := string(rs.Override[8].Conditions[1]); got != `{"key":"state_key","kind":"event_match","pattern":""}` {
		t.Fatalf("tombstone condition: %s", got)
	}
}

func TestPushRulesCRUD(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	s0 := inboxSync(t, alice, nil)

	put := func(kind, id, query string, body any) *testserver.Response {
		return alice.Do(t, http.MethodPut, testserver.Sprintf("pushrules/global/%s/%s", kind, id)+query, body)
	}
	notify := map[string]any{"actions": []any{"notify"}}
	for _, r := range []string{"one", "two"} {
		if res := put("override", r, "", map[string]any{"actions": []any{"notify"}, "conditions": []any{map[string]any{"kind": "event_match", "key": "type", "pattern": "m.x"}}}); res.Status != 200 {
			t.Fatalf("put %s: %s", r, res.Body)
		}
	}
	// New rules are the most important user rules: two, one (after master).
	if got := ids(getRules(t, alice).Override); !eq(got[:4], []string{".m.rule.master", "two", "one", ".m.rule.suppress_notices"}) {
		t.Fatalf("order after puts: %v", got)
	}
	if res := put("override", "three", "?after=one", notify); res.Status != 200 {
		t.Fatalf("after: %s", res.Body)
	}
	if res := put("override", "zero", "?before=two", notify); res.Status != 200 {
		t.Fatalf("before: %s", res.Body)
	}
	if got := ids(getRules(t, alice).Override); !eq(got[:6], []string{".m.rule.master", "zero", "two", "one", "three", ".m.rule.suppress_notices"}) {
		t.Fatalf("order after before/after: %v", got)
	}
	// Moving an existing rule.
	put("override", "zero", "?after=three", notify)
	if got := ids(getRules(t, alice).Override); !eq(got[1:5], []string{"two", "one", "three", "zero"}) {
		t.Fatalf("order after move: %v", got)
	}

	wantErr(t, put("override", "four", "?before=nope", notify), 400, "M_UNKNOWN")
	wantErr(t, put("override", "four", "?before=.m.rule.master", notify), 400, "M_UNKNOWN")
	wantErr(t, put("override", ".m.rule.mine", "", notify), 400, "M_INVALID_PARAM")
	wantErr(t, put("bogus", "x", "", notify), 400, "M_UNRECOGNIZED")
	wantErr(t, put("content", "nopattern", "", notify), 400, "M_BAD_JSON")
	wantErr(t, put("override", "noactions", "", map[string]any{}), 400, "M_BAD_JSON")
	wantErr(t, put("override", "badaction", "", map[string]any{"actions": []any{"explode"}}), 400, "M_BAD_JSON")
	if res := put("content", "cake", "", map[string]any{"actions": []any{"notify"}, "pattern": "cake*lie"}); res.Status != 200 {
		t.Fatalf("content rule: %s", res.Body)
	}
	if res := put("room", "!r:hs1.test", "", map[string]any{"actions": []any{}}); res.Status != 200 {
		t.Fatalf("room rule: %s", res.Body)
	}

	res := alice.MustDo(t, http.MethodGet, "pushrules/global/content/cake", nil)
	if res.JSON["pattern"] != "cake*lie" || res.JSON["default"] != false || res.JSON["enabled"] != true {
		t.Fatalf("GET rule: %s", res.Body)
	}
	if res := alice.MustDo(t, http.MethodGet, testserver.Sprintf("pushrules/global/room/%s", "!r:hs1.test"), nil); res.JSON["rule_id"] != "!r:hs1.test" {
		t.Fatalf("GET room rule: %s", res.Body)
	}
	wantErr(t, alice.Do(t, http.MethodGet, "pushrules/global/override/missing", nil), 404, "M_NOT_FOUND")

	// enabled / actions on a user rule and a default rule.
	alice.MustDo(t, http.MethodPut, "pushrules/global/content/cake/enabled", map[string]any{"enabled": false})
	if res := alice.MustDo(t, http.MethodGet, "pushrules/global/content/cake/enabled", nil); res.JSON["enabled"] != false {
		t.Fatalf("enabled: %s", res.Body)
	}
	alice.MustDo(t, http.MethodPut, "pushrules/global/override/.m.rule.master/enabled", map[string]any{"enabled": true})
	alice.MustDo(t, http.MethodPut, "pushrules/global/underride/.m.rule.message/actions", map[string]any{"actions": []any{}})
	if res := alice.MustDo(t, http.MethodGet, "pushrules/global/underride/.m.rule.message/actions", nil); len(res.JSON["actions"].([]any)) != 0 {
		t.Fatalf("actions: %s", res.Body)
	}
	rs := getRules(t, alice)
	if !rs.Override[0].Enabled {
		t.Fatal("master not enabled")
	}
	wantErr(t, alice.Do(t, http.MethodPut, "pushrules/global/override/missing/enabled", map[string]any{"enabled": true}), 404, "M_NOT_FOUND")
	wantErr(t, alice.Do(t, http.MethodPut, "pushrules/global/override/.m.rule.nope/enabled", map[string]any{"enabled": true}), 404, "M_NOT_FOUND")
	wantErr(t, alice.Do(t, http.MethodPut, "pushrules/global/override/one/enabled", map[string]any{}), 400, "M_BAD_JSON")

	// Updating a rule keeps its enabled state.
	alice.MustDo(t, http.MethodPut, "pushrules/global/content/cake", map[string]any{"actions": []any{"notify"}, "pattern": "pie"})
	if res := alice.MustDo(t, http.MethodGet, "pushrules/global/content/cake", nil); res.JSON["pattern"] != "pie" || res.JSON["enabled"] != false {
		t.Fatalf("update: %s", res.Body)
	}

	// Malformed paths are 400 M_UNRECOGNIZED, as Synapse answers.
	for _, p := range []string{"pushrules/global", "pushrules/global/room", "pushrules/nope/", "pushrules/global/nope/",
		"pushrules/global/override/.m.rule.master/nope", "pushrules/global/override/a/b/c"} {
		wantErr(t, alice.Do(t, http.MethodGet, p, nil), 400, "M_UNRECOGNIZED")
	}
	wantErr(t, alice.Do(t, http.MethodPut, "pushrules/global/room/", notify), 400, "M_UNRECOGNIZED")
	// A rule of a kind this server lacks does not exist; writing one is refused.
	wantErr(t, alice.Do(t, http.MethodGet, "pushrules/global/postcontent/.x.rule", nil), 404, "M_NOT_FOUND")
	wantErr(t, alice.Do(t, http.MethodPut, "pushrules/global/postcontent/.x.rule/enabled", map[string]any{"enabled": false}), 400, "M_UNRECOGNIZED")
	wantErr(t, alice.Do(t, http.MethodGet, "pushrules", nil), 404, "M_UNRECOGNIZED")
	// A trailing slash lists a kind.
	res = alice.MustDo(t, http.MethodGet, "pushrules/global/content/", nil)
	var list []rule
	if err := json.Unmarshal(res.Body, &list); err != nil || !eq(ids(list), []string{"cake", ".m.rule.contains_user_name"}) {
		t.Fatalf("content list: %s", res.Body)
	}
	if res := alice.MustDo(t, http.MethodGet, "pushrules/global/", nil); res.JSON["override"] == nil || res.JSON["global"] != nil {
		t.Fatalf("global scope: %s", res.Body)
	}

	// Delete.
	wantErr(t, alice.Do(t, http.MethodDelete, "pushrules/global/override/.m.rule.master", nil), 404, "M_NOT_FOUND")
	wantErr(t, alice.Do(t, http.MethodDelete, "pushrules/global/override/missing", nil), 404, "M_NOT_FOUND")
	alice.MustDo(t, http.MethodDelete, "pushrules/global/override/two", nil)
	wantErr(t, alice.Do(t, http.MethodGet, "pushrules/global/override/two", nil), 404, "M_NOT_FOUND")

	// The changes reach sync as m.push_rules, once.
	s1 := inboxSync(t, alice, since(s0.NextBatch))
	evs := findType(s1.AccountData.Events, "m.push_rules")
	if len(evs) != 1 {
		t.Fatalf("m.push_rules not in sync once: %s", s1.raw)
	}
	var content struct {
		Global ruleset `json:"global"`
	}
	_ = json.Unmarshal(evs[0].Content, &content)
	if got := ids(content.Global.Override); !eq(got[:4], []string{".m.rule.master", "one", "three", "zero"}) {
		t.Fatalf("m.push_rules in sync: %v", got)
	}
	if s2 := inboxSync(t, alice, since(s1.NextBatch)); len(s2.AccountData.Events) != 0 {
		t.Fatalf("m.push_rules repeated: %s", s2.raw)
	}
}

package clientapi_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"parley/internal/testserver"
)

func TestSpaceHierarchy(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	hs := srv.HS.Config.ServerName
	spaceType := map[string]any{"type": "m.space"}
	space := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Space", "creation_content": spaceType})
	a := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "A"})
	b := createRoom(t, alice, map[string]any{"preset": "private_chat", "name": "B"})
	d := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "D"})
	sub := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Sub", "creation_content": spaceType})
	e := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "E"})
	noVia := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "NoVia"})
	f := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "F"})
	g := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "G"})
	child := func(parent, room string, content map[string]any) {
		t.Helper()
		alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.space.child/%s", parent, room), content)
		time.Sleep(2 * time.Millisecond) // distinct origin_server_ts: unordered children sort by it
	}
	via := []string{hs}
	child(space, a, map[string]any{"via": via, "order": "b", "suggested": true})
	child(space, b, map[string]any{"via": via})
	child(space, d, map[string]any{"via": via, "order": "a"})
	child(space, sub, map[string]any{"via": via})
	child(space, noVia, map[string]any{"via": []string{}})
	child(space, f, map[string]any{"via": via})
	child(sub, e, map[string]any{"via": via})
	child(sub, space, map[string]any{"via": via}) // a loop
	child(d, g, map[string]any{"via": via})       // d is not a space: not followed

	get := func(c *testserver.Client, query string) *testserver.Response {
		t.Helper()
		return c.MustDo(t, http.MethodGet, v1Path("rooms/%s/hierarchy", space)+query, nil)
	}
	ids := func(res *testserver.Response) []string {
		var out []string
		for _, r := range res.JSON["rooms"].([]any) {
			out = append(out, r.(map[string]any)["room_id"].(string))
		}
		return out
	}
	res := get(bob, "")
	// Depth first: Sub's subtree comes before F, Sub's later sibling.
	if got := ids(res); !slices.Equal(got, []string{space, d, a, sub, e, f}) {
		t.Fatalf("hierarchy for bob: got %v want %v", got, []string{space, d, a, sub, e, f})
	}
	if cs := res.JSON["rooms"].([]any)[1].(map[string]any)["children_state"].([]any); len(cs) != 0 {
		t.Fatalf("children_state of a room that is not a space: %v", cs)
	}
	root := res.JSON["rooms"].([]any)[0].(map[string]any)
	if root["room_type"] != "m.space" || root["name"] != "Space" || root["num_joined_members"] != float64(1) || root["join_rule"] != "public" ||
		root["room_version"] != string(srv.HS.Config.Rooms.DefaultVersion) {
		t.Fatalf("root summary: %v", root)
	}
	var kids []string
	for _, c := range root["children_state"].([]any) {
		ev := c.(map[string]any)
		if ev["type"] != "m.space.child" || ev["sender"] != string(alice.UserID) || ev["origin_server_ts"] == nil {
			t.Fatalf("child state: %v", ev)
		}
		kids = append(kids, ev["state_key"].(string))
	}
	if !slices.Equal(kids, []string{d, a, b, sub, f}) {
		t.Fatalf("children_state: %v want %v", kids, []string{d, a, b, sub, f})
	}
	// alice may see the private room B.
	if got := ids(get(alice, "")); !slices.Equal(got, []string{space, d, a, b, sub, e, f}) {
		t.Fatalf("hierarchy for alice: %v", got)
	}
	if got := ids(get(bob, "?max_depth=1")); !slices.Equal(got, []string{space, d, a, sub, f}) {
		t.Fatalf("max_depth=1: %v", got)
	}
	if got := ids(get(bob, "?max_depth=0")); !slices.Equal(got, []string{space}) {
		t.Fatalf("max_depth=0: %v", got)
	}
	if got := ids(get(bob, "?suggested_only=true")); !slices.Equal(got, []string{space, a}) {
		t.Fatalf("suggested_only: %v", got)
	}
	// Pagination.
	var all []string
	from := ""
	for page := 0; page < 10; page++ {
		q := "?limit=2"
		if from != "" {
			q += "&from=" + from
		}
		res := get(bob, q)
		all = append(all, ids(res)...)
		next, ok := res.JSON["next_batch"].(string)
		if !ok {
			break
		}
		from = next
	}
	if !slices.Equal(all, []string{space, d, a, sub, e, f}) {
		t.Fatalf("paginated: %v", all)
	}
	tok := get(bob, "?limit=1").JSON["next_batch"].(string)
	path := v1Path("rooms/%s/hierarchy", space)
	wantErr(t, bob.Do(t, http.MethodGet, path+"?limit=1&max_depth=1&from="+tok, nil), http.StatusBadRequest, "M_INVALID_PARAM")
	wantErr(t, bob.Do(t, http.MethodGet, path+"?from=bogus", nil), http.StatusBadRequest, "M_INVALID_PARAM")
	wantErr(t, bob.Do(t, http.MethodGet, path+"?limit=0", nil), http.StatusBadRequest, "M_INVALID_PARAM")
	wantErr(t, bob.Do(t, http.MethodGet, path+"?max_depth=-1", nil), http.StatusBadRequest, "M_INVALID_PARAM")
	wantErr(t, bob.Do(t, http.MethodGet, v1Path("rooms/%s/hierarchy", b), nil), http.StatusForbidden, "M_FORBIDDEN")
	wantErr(t, bob.Do(t, http.MethodGet, v1Path("rooms/%s/hierarchy", "!unknown:"+hs), nil), http.StatusForbidden, "M_FORBIDDEN")

	// A room restricted to space members: visible to bob once he joins the space.
	restricted := createRoom(t, alice, map[string]any{"preset": "private_chat", "name": "R", "initial_state": []any{map[string]any{
		"type": "m.room.join_rules", "state_key": "", "content": map[string]any{"join_rule": "restricted",
			"allow": []any{map[string]any{"type": "m.room_membership", "room_id": space}}}}}})
	child(space, restricted, map[string]any{"via": via, "order": "c"})
	if got := ids(get(bob, "")); slices.Contains(got, restricted) {
		t.Fatalf("restricted room visible to a non-member of the space: %v", got)
	}
	member(t, bob, space, "join", nil)
	res = get(bob, "")
	if got := ids(res); !slices.Equal(got, []string{space, d, a, restricted, sub, e, f}) {
		t.Fatalf("after joining the space: %v", got)
	}
	r := res.JSON["rooms"].([]any)[3].(map[string]any)
	if allowed, _ := r["allowed_room_ids"].([]any); len(allowed) != 1 || allowed[0] != space || r["join_rule"] != "restricted" {
		t.Fatalf("restricted room summary: %v", r)
	}
}

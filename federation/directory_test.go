package federation_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
)

// chunkIDs lists the room_id of each entry of a publicRooms chunk or hierarchy rooms list.
func chunkIDs(list any) []string {
	var out []string
	items, _ := list.([]any)
	for _, r := range items {
		m, _ := r.(map[string]any)
		s, _ := m["room_id"].(string)
		out = append(out, s)
	}
	return out
}

func TestRemotePublicRooms(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	alice2 := hs1.Register(t, "alice2")
	bob := hs2.Register(t, "bob")
	lobby := createRoom(t, alice, map[string]any{"preset": "public_chat", "visibility": "public", "name": "Lobby", "topic": "say hello"})
	alice2.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(lobby)), map[string]any{})
	games := createRoom(t, alice, map[string]any{"preset": "public_chat", "visibility": "public", "name": "Games"})
	space := createRoom(t, alice, map[string]any{"preset": "public_chat", "visibility": "public", "name": "Space",
		"creation_content": map[string]any{"type": "m.space"}})
	createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Unlisted"})
	// A room published on hs2 must not show up in hs1's directory.
	createRoom(t, bob, map[string]any{"preset": "public_chat", "visibility": "public", "name": "Bob's"})

	// The client API relays to hs1: GET without a filter, POST with one.
	res := bob.MustDo(t, http.MethodGet, "publicRooms?server=hs1.test", nil)
	got := chunkIDs(res.JSON["chunk"])
	if len(got) != 3 || got[0] != string(lobby) || !slices.Contains(got, string(games)) || !slices.Contains(got, string(space)) {
		t.Fatalf("remote directory: %s", res.Body)
	}
	if res.JSON["total_room_count_estimate"] != float64(3) {
		t.Fatalf("total: %s", res.Body)
	}
	first := res.JSON["chunk"].([]any)[0].(map[string]any)
	if first["name"] != "Lobby" || first["topic"] != "say hello" || first["num_joined_members"] != float64(2) {
		t.Fatalf("lobby entry: %v", first)
	}
	// Pagination with hs1's tokens.
	page1 := bob.MustDo(t, http.MethodGet, "publicRooms?server=hs1.test&limit=2", nil)
	next, _ := page1.JSON["next_batch"].(string)
	if len(chunkIDs(page1.JSON["chunk"])) != 2 || next == "" {
		t.Fatalf("page 1: %s", page1.Body)
	}
	page2 := bob.MustDo(t, http.MethodGet, "publicRooms?server=hs1.test&limit=2&since="+url.QueryEscape(next), nil)
	if all := append(chunkIDs(page1.JSON["chunk"]), chunkIDs(page2.JSON["chunk"])...); !slices.Equal(all, got) || page2.JSON["next_batch"] != nil {
		t.Fatalf("page 2: %s", page2.Body)
	}
	res = bob.MustDo(t, http.MethodPost, "publicRooms?server=hs1.test", map[string]any{"filter": map[string]any{"generic_search_term": "HELLO"}})
	if got := chunkIDs(res.JSON["chunk"]); !slices.Equal(got, []string{string(lobby)}) {
		t.Fatalf("search term over federation: %s", res.Body)
	}
	res = bob.MustDo(t, http.MethodPost, "publicRooms?server=hs1.test", map[string]any{"filter": map[string]any{"room_types": []any{"m.space"}}})
	if got := chunkIDs(res.JSON["chunk"]); !slices.Equal(got, []string{string(space)}) {
		t.Fatalf("room_types over federation: %s", res.Body)
	}
	res = bob.MustDo(t, http.MethodPost, "publicRooms?server=hs1.test", map[string]any{"limit": 1, "include_all_networks": true})
	if got := chunkIDs(res.JSON["chunk"]); !slices.Equal(got, []string{string(lobby)}) || res.JSON["next_batch"] == nil {
		t.Fatalf("limit over federation: %s", res.Body)
	}
	// hs1's errors come back as errors; an unreachable server is a 502.
	if r := bob.Do(t, http.MethodGet, "publicRooms?server=hs1.test&since=bogus", nil); r.Status != http.StatusBadRequest || r.ErrCode != "M_INVALID_PARAM" {
		t.Fatalf("bad since relayed: %d %s", r.Status, r.Body)
	}
	if r := bob.Do(t, http.MethodGet, "publicRooms?server=unreachable.invalid", nil); r.Status != http.StatusBadGateway {
		t.Fatalf("unreachable server: %d %s", r.Status, r.Body)
	}
	if r := bob.Do(t, http.MethodGet, "publicRooms?server=bad%20name", nil); r.Status != http.StatusBadRequest || r.ErrCode != "M_INVALID_PARAM" {
		t.Fatalf("invalid server name: %d %s", r.Status, r.Body)
	}
	if r := hs2.Anon().Do(t, http.MethodGet, "publicRooms?server=hs1.test", nil); r.Status != http.StatusUnauthorized || r.ErrCode != "M_MISSING_TOKEN" {
		t.Fatalf("remote directory without a token: %d %s", r.Status, r.Body)
	}
	if r := hs2.Anon().Do(t, http.MethodGet, "publicRooms", nil); r.Status != http.StatusOK {
		t.Fatalf("local directory without a token: %d %s", r.Status, r.Body)
	}

	// The federation endpoint itself, signed as hs2.
	fc := fedClient(t, hs2)
	ctx := context.Background()
	var out map[string]any
	if err := fc.MakeRequest(ctx, "hs1.test", true, http.MethodPost, mfedPath("v1", "publicRooms"),
		map[string]any{"filter": map[string]any{"generic_search_term": "game"}}, &out); err != nil {
		t.Fatal(err)
	}
	if got := chunkIDs(out["chunk"]); !slices.Equal(got, []string{string(games)}) {
		t.Fatalf("federation POST publicRooms: %v", out)
	}
	_, _, err := fc.MakeFullRequest(ctx, federation.RequestParams{ServerName: "hs1.test", Method: http.MethodGet,
		Path: mfedPath("v1", "publicRooms"), Query: url.Values{"since": {"bogus"}}, Authenticate: true})
	if !isErr(err, http.StatusBadRequest, "M_INVALID_PARAM") {
		t.Fatalf("bad since: %v", err)
	}
	_, _, err = fc.MakeFullRequest(ctx, federation.RequestParams{ServerName: "hs1.test", Method: http.MethodGet,
		Path: mfedPath("v1", "publicRooms"), Query: url.Values{"third_party_instance_id": {"irc"}}, Authenticate: true, ResponseJSON: &out})
	if err != nil || len(chunkIDs(out["chunk"])) != 0 {
		t.Fatalf("third-party network: %v %v", err, out)
	}
	if status, _ := rawFed(t, hs1, http.MethodGet, "/_matrix/federation/v1/publicRooms", "", nil); status != http.StatusUnauthorized {
		t.Fatalf("unsigned publicRooms: %d", status)
	}
}

func TestRemoteSpaceHierarchy(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	spaceType := map[string]any{"type": "m.space"}
	via := []string{"hs1.test"}
	space := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Space", "creation_content": spaceType})
	pub := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Public", "topic": "open"})
	priv := createRoom(t, alice, map[string]any{"preset": "private_chat", "name": "Private"})
	restricted := createRoom(t, alice, map[string]any{"preset": "private_chat", "name": "Members", "initial_state": []any{map[string]any{
		"type": "m.room.join_rules", "state_key": "", "content": map[string]any{"join_rule": "restricted",
			"allow": []any{map[string]any{"type": "m.room_membership", "room_id": space}}}}}})
	sub := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Sub", "creation_content": spaceType})
	deep := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Deep"})
	child := func(c *testserver.Client, parent, room id.RoomID, content map[string]any) {
		t.Helper()
		c.MustDo(t, http.MethodPut, "rooms/"+url.PathEscape(string(parent))+"/state/m.space.child/"+url.PathEscape(string(room)), content)
	}
	child(alice, space, pub, map[string]any{"via": via, "order": "a", "suggested": true})
	child(alice, space, priv, map[string]any{"via": via, "order": "b"})
	child(alice, space, restricted, map[string]any{"via": via, "order": "c"})
	child(alice, space, sub, map[string]any{"via": via, "order": "d"})
	child(alice, sub, deep, map[string]any{"via": via})
	child(alice, sub, "!unknown:hs1.test", map[string]any{"via": via})

	// The federation endpoint, asked by hs2 (which has no member anywhere).
	fc := fedClient(t, hs2)
	ctx := context.Background()
	var h struct {
		Room         map[string]any   `json:"room"`
		Children     []map[string]any `json:"children"`
		Inaccessible []string         `json:"inaccessible_children"`
	}
	if err := fc.MakeRequest(ctx, "hs1.test", true, http.MethodGet, mfedPath("v1", "hierarchy", string(space)), nil, &h); err != nil {
		t.Fatal(err)
	}
	if h.Room["room_id"] != string(space) || h.Room["room_type"] != "m.space" || len(h.Room["children_state"].([]any)) != 4 {
		t.Fatalf("hierarchy room: %v", h.Room)
	}
	var kids []string
	for _, c := range h.Children {
		kids = append(kids, c["room_id"].(string))
	}
	if !slices.Equal(kids, []string{string(pub), string(sub)}) || !slices.Equal(h.Inaccessible, []string{string(priv), string(restricted)}) {
		t.Fatalf("children %v inaccessible %v", kids, h.Inaccessible)
	}
	if h.Children[0]["name"] != "Public" || h.Children[0]["room_version"] == nil {
		t.Fatalf("child summary: %v", h.Children[0])
	}
	_, _, err := fc.MakeFullRequest(ctx, federation.RequestParams{ServerName: "hs1.test", Method: http.MethodGet,
		Path: mfedPath("v1", "hierarchy", string(space)), Query: url.Values{"suggested_only": {"true"}}, Authenticate: true, ResponseJSON: &h})
	if err != nil || len(h.Children) != 1 || h.Children[0]["room_id"] != string(pub) || len(h.Room["children_state"].([]any)) != 1 {
		t.Fatalf("suggested_only: %v %+v", err, h)
	}
	if err := fc.MakeRequest(ctx, "hs1.test", true, http.MethodGet, mfedPath("v1", "hierarchy", string(priv)), nil, &h); !isErr(err, http.StatusNotFound, "M_NOT_FOUND") {
		t.Fatalf("private room for a server without members: %v", err)
	}
	if err := fc.MakeRequest(ctx, "hs1.test", true, http.MethodGet, mfedPath("v1", "hierarchy", "!nope:hs1.test"), nil, &h); !isErr(err, http.StatusNotFound, "M_NOT_FOUND") {
		t.Fatalf("unknown room: %v", err)
	}
	if status, _ := rawFed(t, hs1, http.MethodGet, "/_matrix/federation/v1/hierarchy/"+url.PathEscape(string(space)), "", nil); status != http.StatusUnauthorized {
		t.Fatalf("unsigned hierarchy: %d", status)
	}

	// The client API on hs2: bob's own space points at alice's space on hs1;
	// everything below it comes from hs1 over federation.
	home := createRoom(t, bob, map[string]any{"preset": "public_chat", "name": "Bob's space", "creation_content": spaceType})
	child(bob, home, space, map[string]any{"via": via})
	ids := func(q string) []string {
		t.Helper()
		res := bob.MustDo(t, http.MethodGet, "/_matrix/client/v1/rooms/"+url.PathEscape(string(home))+"/hierarchy"+q, nil)
		return chunkIDs(res.JSON["rooms"])
	}
	want := []string{string(home), string(space), string(pub), string(sub), string(deep)}
	if got := ids(""); !slices.Equal(got, want) {
		t.Fatalf("hierarchy through hs1: got %v want %v", got, want)
	}
	res := bob.MustDo(t, http.MethodGet, "/_matrix/client/v1/rooms/"+url.PathEscape(string(home))+"/hierarchy?limit=2", nil)
	rooms := res.JSON["rooms"].([]any)
	remote := rooms[1].(map[string]any)
	if remote["name"] != "Space" || remote["room_type"] != "m.space" || len(remote["children_state"].([]any)) != 4 || res.JSON["next_batch"] == nil {
		t.Fatalf("remote space summary: %s", res.Body)
	}
	if got := ids("?max_depth=1"); !slices.Equal(got, want[:2]) {
		t.Fatalf("max_depth=1: %v", got)
	}
	if got := ids("?suggested_only=true"); !slices.Equal(got, want[:1]) {
		t.Fatalf("suggested_only (bob's link to the space is not suggested): %v", got)
	}

	// Once bob joins the space, hs1 lets hs2 see the room restricted to it,
	// and bob may see it.
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(space))+"?server_name=hs1.test", map[string]any{})
	eventually(t, "bob in the space", func() bool { return membership(t, alice, space, bob.UserID) == "join" })
	want = []string{string(home), string(space), string(pub), string(restricted), string(sub), string(deep)}
	if got := ids(""); !slices.Equal(got, want) {
		t.Fatalf("after joining the space: got %v want %v", got, want)
	}
	// Answers are cached for a minute: with hs1 stopped, rooms seen before
	// still show; a room never asked about vanishes, without a long wait.
	fresh := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Fresh"})
	child(bob, home, fresh, map[string]any{"via": via})
	hs1.StopFederation()
	start := time.Now()
	if got := ids(""); !slices.Equal(got, want) {
		t.Fatalf("with hs1 unreachable: %v, want %v", got, want)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("hierarchy with hs1 down took %v", d)
	}
}

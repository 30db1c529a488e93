package clientapi_test

import (
	"net/http"
	"slices"
	"testing"

	"parley/internal/testserver"
)

func TestRoomDirectory(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	anon := srv.Anon()

	big := createRoom(t, alice, map[string]any{"preset": "public_chat", "visibility": "public", "name": "Big Room",
		"topic": "all about cheese", "room_alias_name": "big"})
	member(t, bob, big, "join", nil)
	member(t, carol, big, "join", nil)
	small := createRoom(t, bob, map[string]any{"preset": "public_chat", "visibility": "public", "name": "Small"})
	space := createRoom(t, alice, map[string]any{"preset": "public_chat", "visibility": "public", "name": "Space",
		"creation_content": map[string]any{"type": "m.space"}})
	member(t, bob, space, "join", nil)
	hidden := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Hidden"})

	vis := func(room string) string {
		t.Helper()
		return anon.MustDo(t, http.MethodGet, testserver.Sprintf("directory/list/room/%s", room), nil).JSON["visibility"].(string)
	}
	if vis(big) != "public" || vis(hidden) != "private" {
		t.Fatalf("visibility: %s %s", vis(big), vis(hidden))
	}
	wantErr(t, anon.Do(t, http.MethodGet, testserver.Sprintf("directory/list/room/%s", "!nope:hs1.test"), nil), http.StatusNotFound, "M_NOT_FOUND")

	res := anon.MustDo(t, http.MethodGet, "publicRooms", nil)
	ids := chunkRoomIDs(res)
	if len(ids) != 3 || ids[0] != big || ids[1] != space || ids[2] != small || res.JSON["total_room_count_estimate"] != float64(3) {
		t.Fatalf("publicRooms order: %v (%s)", ids, res.Body)
	}
	first := res.JSON["chunk"].([]any)[0].(map[string]any)
	if first["name"] != "Big Room" || first["topic"] != "all about cheese" || first["num_joined_members"] != float64(3) ||
		first["canonical_alias"] != "#big:"+srv.HS.Config.ServerName || first["join_rule"] != "public" ||
		first["world_readable"] != false || first["guest_can_join"] != false {
		t.Fatalf("chunk entry: %v", first)
	}
	if res.JSON["chunk"].([]any)[1].(map[string]any)["room_type"] != "m.space" {
		t.Fatalf("room_type missing: %s", res.Body)
	}

	// Pagination.
	res = anon.MustDo(t, http.MethodGet, "publicRooms?limit=2", nil)
	if ids := chunkRoomIDs(res); len(ids) != 2 || res.JSON["next_batch"] == nil || res.JSON["prev_batch"] != nil {
		t.Fatalf("page 1: %s", res.Body)
	}
	res = anon.MustDo(t, http.MethodGet, "publicRooms?limit=2&since="+res.JSON["next_batch"].(string), nil)
	if ids := chunkRoomIDs(res); len(ids) != 1 || ids[0] != small || res.JSON["next_batch"] != nil || res.JSON["prev_batch"] != "p0" {
		t.Fatalf("page 2: %s", res.Body)
	}
	wantErr(t, anon.Do(t, http.MethodGet, "publicRooms?since=garbage", nil), http.StatusBadRequest, "M_INVALID_PARAM")

	// POST with filters (authenticated only).
	if res := anon.Do(t, http.MethodPost, "publicRooms", map[string]any{}); res.Status != http.StatusUnauthorized {
		t.Fatalf("anonymous POST: %d", res.Status)
	}
	res = bob.MustDo(t, http.MethodPost, "publicRooms", map[string]any{"filter": map[string]any{"generic_search_term": "CHEESE"}})
	if ids := chunkRoomIDs(res); len(ids) != 1 || ids[0] != big {
		t.Fatalf("search: %s", res.Body)
	}
	res = bob.MustDo(t, http.MethodPost, "publicRooms", map[string]any{"filter": map[string]any{"room_types": []any{"m.space"}}})
	if ids := chunkRoomIDs(res); len(ids) != 1 || ids[0] != space {
		t.Fatalf("room_types [m.space]: %s", res.Body)
	}
	res = bob.MustDo(t, http.MethodPost, "publicRooms", map[string]any{"filter": map[string]any{"room_types": []any{nil}}})
	if ids := chunkRoomIDs(res); len(ids) != 2 {
		t.Fatalf("room_types [null]: %s", res.Body)
	}
	wantErr(t, bob.Do(t, http.MethodPost, "publicRooms", map[string]any{"limit": "x"}), http.StatusBadRequest, "M_BAD_JSON")

	// Changing visibility: bob (power 0) may not; alice (creator) may.
	wantErr(t, bob.Do(t, http.MethodPut, testserver.Sprintf("directory/list/room/%s", big), map[string]any{"visibility": "private"}), http.StatusForbidden, "M_FORBIDDEN")
	wantErr(t, alice.Do(t, http.MethodPut, testserver.Sprintf("directory/list/room/%s", big), map[string]any{"visibility": "secret"}), http.StatusBadRequest, "M_INVALID_PARAM")
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("directory/list/room/%s", big), map[string]any{"visibility": "private"})
	wantErr(t, alice.Do(t, http.MethodPut, testserver.Sprintf("directory/list/room/%s", "!nope:hs1.test"), map[string]any{"visibility": "public"}), http.StatusNotFound, "M_NOT_FOUND")
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("directory/list/room/%s", hidden), map[string]any{}) // defaults to public
	if vis(big) != "private" || vis(hidden) != "public" {
		t.Fatal("visibility not changed")
	}
	res = anon.MustDo(t, http.MethodGet, "publicRooms", nil)
	if ids := chunkRoomIDs(res); len(ids) != 3 || !slices.Contains(ids, hidden) {
		t.Fatalf("after changes: %v", ids)
	}
	for _, id := range chunkRoomIDs(res) {
		if id == big {
			t.Fatal("unpublished room still listed")
		}
	}
}

func chunkRoomIDs(res *testserver.Response) []string {
	var out []string
	for _, e := range res.JSON["chunk"].([]any) {
		out = append(out, e.(map[string]any)["room_id"].(string))
	}
	return out
}

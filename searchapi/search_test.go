package searchapi_test

import (
	"fmt"
	"net/http"
	"testing"

	"parley/internal/config"
	"parley/internal/testserver"
)

var txn int

func createRoom(t *testing.T, c *testserver.Client, body any) string {
	t.Helper()
	res := c.MustDo(t, http.MethodPost, "createRoom", body)
	return res.JSON["room_id"].(string)
}

func send(t *testing.T, c *testserver.Client, room, text string) string {
	t.Helper()
	txn++
	res := c.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/%s", room, fmt.Sprint(txn)),
		map[string]any{"msgtype": "m.text", "body": text})
	return res.JSON["event_id"].(string)
}

func search(t *testing.T, c *testserver.Client, path string, crit map[string]any) (map[string]any, *testserver.Response) {
	t.Helper()
	if path == "" {
		path = "search"
	}
	res := c.Do(t, http.MethodPost, path, map[string]any{"search_categories": map[string]any{"room_events": crit}})
	if res.Status != http.StatusOK {
		return nil, res
	}
	return res.JSON["search_categories"].(map[string]any)["room_events"].(map[string]any), res
}

func resultIDs(re map[string]any) []string {
	var out []string
	for _, r := range re["results"].([]any) {
		out = append(out, r.(map[string]any)["result"].(map[string]any)["event_id"].(string))
	}
	return out
}

func TestSearchRankingAndOrder(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	room := createRoom(t, alice, map[string]any{"preset": "private_chat", "name": "Quarterly planning room"})
	weak := send(t, alice, room, "the budget meeting moved to friday, see you there with coffee and snacks")
	strong := send(t, alice, room, "budget budget budget")
	send(t, alice, room, "nothing relevant here")
	newest := send(t, alice, room, "one more budget note")

	re, res := search(t, alice, "", map[string]any{"search_term": "budget", "order_by": "rank"})
	if re == nil {
		t.Fatalf("search: %d %s", res.Status, res.Body)
	}
	ids := resultIDs(re)
	if len(ids) != 3 || ids[0] != strong {
		t.Fatalf("rank order: want %s first of 3, got %v (%s)", strong, ids, res.Body)
	}
	if re["count"].(float64) < 3 {
		t.Fatalf("count: %v", re["count"])
	}
	if hl := re["highlights"].([]any); len(hl) != 1 || hl[0] != "budget" {
		t.Fatalf("highlights: %v", hl)
	}
	re, _ = search(t, alice, "", map[string]any{"search_term": "budget", "order_by": "recent"})
	ids = resultIDs(re)
	if len(ids) != 3 || ids[0] != newest || ids[2] != weak {
		t.Fatalf("recent order: got %v", ids)
	}
	// keys: the room name matches only when content.name is searched.
	re, _ = search(t, alice, "", map[string]any{"search_term": "quarterly", "keys": []string{"content.name"}})
	if ids := resultIDs(re); len(ids) != 1 {
		t.Fatalf("name search: %v", ids)
	}
	re, _ = search(t, alice, "", map[string]any{"search_term": "quarterly", "keys": []string{"content.body"}})
	if ids := resultIDs(re); len(ids) != 0 {
		t.Fatalf("body search found the name: %v", ids)
	}
}

func TestSearchPagination(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	room := createRoom(t, alice, map[string]any{"preset": "private_chat"})
	want := map[string]bool{}
	for i := 0; i < 7; i++ {
		want[send(t, alice, room, fmt.Sprintf("pagination message %d", i))] = true
	}
	seen := map[string]bool{}
	path := "search"
	for page := 0; ; page++ {
		re, res := search(t, alice, path, map[string]any{"search_term": "pagination", "order_by": "recent", "filter": map[string]any{"limit": 3}})
		if re == nil {
			t.Fatalf("page %d: %d %s", page, res.Status, res.Body)
		}
		ids := resultIDs(re)
		if len(ids) > 3 {
			t.Fatalf("page %d has %d results", page, len(ids))
		}
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("duplicate %s", id)
			}
			seen[id] = true
		}
		nb, ok := re["next_batch"].(string)
		if !ok {
			break
		}
		if page > 5 {
			t.Fatal("pagination does not end")
		}
		path = "search?next_batch=" + nb
	}
	if len(seen) != len(want) {
		t.Fatalf("saw %d of %d", len(seen), len(want))
	}
	if _, res := search(t, alice, "search?next_batch=x", map[string]any{"search_term": "pagination"}); res.Status != 400 {
		t.Fatalf("bad next_batch: %d", res.Status)
	}
}

func TestSearchVisibility(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	eve := srv.Register(t, "eve")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat", "initial_state": []any{
		map[string]any{"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": "joined"}},
	}})
	before := send(t, alice, room, "secret plan before bob")
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	after := send(t, alice, room, "secret plan after bob arrived")
	redacted := send(t, alice, room, "secret plan to redact")
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/redact/%s/r1", room, redacted), map[string]any{})

	re, _ := search(t, bob, "", map[string]any{"search_term": "secret plan", "order_by": "recent"})
	ids := resultIDs(re)
	if len(ids) != 1 || ids[0] != after {
		t.Fatalf("bob sees %v, want only %s (not %s from before his join)", ids, after, before)
	}
	re, _ = search(t, alice, "", map[string]any{"search_term": "secret", "order_by": "recent"})
	if ids := resultIDs(re); len(ids) != 2 {
		t.Fatalf("alice sees %v, want 2 (the redacted one gone)", ids)
	}
	re, _ = search(t, eve, "", map[string]any{"search_term": "secret"})
	if ids := resultIDs(re); len(ids) != 0 {
		t.Fatalf("non-member sees %v", ids)
	}
	// A filter on rooms and senders, and the event context.
	re, _ = search(t, alice, "", map[string]any{"search_term": "secret", "order_by": "recent",
		"filter":        map[string]any{"senders": []string{string(bob.UserID)}},
		"event_context": map[string]any{"before_limit": 1, "after_limit": 1}})
	if ids := resultIDs(re); len(ids) != 0 {
		t.Fatalf("sender filter: %v", ids)
	}
	re, res := search(t, alice, "", map[string]any{"search_term": "arrived", "order_by": "recent",
		"event_context": map[string]any{"before_limit": 1, "after_limit": 1, "include_profile": true},
		"groupings":     map[string]any{"group_by": []any{map[string]any{"key": "room_id"}}}, "include_state": true})
	if ids := resultIDs(re); len(ids) != 1 {
		t.Fatalf("context search: %s", res.Body)
	}
	c := re["results"].([]any)[0].(map[string]any)["context"].(map[string]any)
	if len(c["events_before"].([]any)) != 1 || len(c["events_after"].([]any)) != 1 {
		t.Fatalf("context: %v", c)
	}
	if _, ok := c["profile_info"].(map[string]any)[string(alice.UserID)]; !ok {
		t.Fatalf("profile_info: %v", c)
	}
	groups := re["groups"].(map[string]any)["room_id"].(map[string]any)
	if g, ok := groups[room].(map[string]any); !ok || len(g["results"].([]any)) != 1 {
		t.Fatalf("groups: %v", groups)
	}
	if st := re["state"].(map[string]any)[room].([]any); len(st) == 0 {
		t.Fatal("include_state returned no state")
	}
}

func TestSearchBadRequests(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	for _, tc := range []struct {
		body any
		code int
		err  string
	}{
		{`{`, 400, "M_NOT_JSON"},
		{`[]`, 400, "M_BAD_JSON"},
		{map[string]any{}, 400, "M_BAD_JSON"},
		{map[string]any{"search_categories": map[string]any{"room_events": map[string]any{}}}, 400, "M_BAD_JSON"},
		{map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x", "order_by": "size"}}}, 400, "M_INVALID_PARAM"},
		{map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x", "keys": []string{"content.url"}}}}, 400, "M_INVALID_PARAM"},
	} {
		res := alice.Do(t, http.MethodPost, "search", tc.body)
		if res.Status != tc.code || res.ErrCode != tc.err {
			t.Errorf("%v: got %d %s, want %d %s", tc.body, res.Status, res.ErrCode, tc.code, tc.err)
		}
	}
	if res := srv.Anon().Do(t, http.MethodPost, "search", map[string]any{}); res.Status != 401 {
		t.Fatalf("no token: %d", res.Status)
	}
}

func TestUserDirectory(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bobby")
	carol := srv.Register(t, "carol")
	dave := srv.Register(t, "dave")
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("profile/%s/displayname", alice.UserID), map[string]any{"displayname": "Alice Wonder"})
	// alice and bob share a private room; carol is in a public room; dave is in no room.
	priv := createRoom(t, alice, map[string]any{"preset": "private_chat"})
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/invite", priv), map[string]any{"user_id": bob.UserID})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", priv), map[string]any{})
	createRoom(t, carol, map[string]any{"preset": "public_chat"})

	find := func(c *testserver.Client, term string) map[string]string {
		res := c.MustDo(t, http.MethodPost, "user_directory/search", map[string]any{"search_term": term})
		out := map[string]string{}
		for _, r := range res.JSON["results"].([]any) {
			m := r.(map[string]any)
			dn, _ := m["display_name"].(string)
			out[m["user_id"].(string)] = dn
		}
		return out
	}
	if got := find(bob, "wonder"); got[string(alice.UserID)] != "Alice Wonder" {
		t.Fatalf("bob searching wonder: %v", got)
	}
	if got := find(dave, "alice"); len(got) != 0 {
		t.Fatalf("dave shares no room with alice but found %v", got)
	}
	if got := find(dave, "carol"); len(got) != 1 {
		t.Fatalf("carol is in a public room: %v", got)
	}
	if got := find(carol, "dave"); len(got) != 0 {
		t.Fatalf("dave found without search_all_users: %v", got)
	}
	// Users find themselves only through a public room.
	if got := find(alice, "wonder"); len(got) != 0 {
		t.Fatalf("alice finds herself through a private room: %v", got)
	}
	if got := find(carol, "carol"); len(got) != 1 {
		t.Fatalf("carol does not find herself through her public room: %v", got)
	}
	// A private room with world-readable history counts as public.
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.history_visibility/", priv), map[string]any{"history_visibility": "world_readable"})
	if got := find(dave, "wonder"); got[string(alice.UserID)] != "Alice Wonder" {
		t.Fatalf("alice in a world-readable room, searched by dave: %v", got)
	}
	res := alice.MustDo(t, http.MethodPost, "user_directory/search", map[string]any{"search_term": "", "limit": 1})
	if res.JSON["limited"] != true || len(res.JSON["results"].([]any)) != 1 {
		t.Fatalf("limit: %s", res.Body)
	}
	if res := alice.Do(t, http.MethodPost, "user_directory/search", map[string]any{}); res.Status != 400 || res.ErrCode != "M_MISSING_PARAM" {
		t.Fatalf("missing term: %d %s", res.Status, res.Body)
	}

	all := testserver.New(t, func(c *config.Config) { c.UserDirectory.SearchAllUsers = true })
	a := all.Register(t, "alice")
	all.Register(t, "dave")
	if got := find(a, "dave"); len(got) != 1 {
		t.Fatalf("search_all_users: %v", got)
	}
}

// TestSearchFullLastPageHasNextBatch: a page filled to the limit carries a
// next_batch even when no results follow; the page after it is empty and has
// none.
func TestSearchFullLastPageHasNextBatch(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	room := createRoom(t, alice, map[string]any{"preset": "private_chat"})
	for i := 0; i < 4; i++ {
		send(t, alice, room, fmt.Sprintf("fullpage message %d", i))
	}
	crit := map[string]any{"search_term": "fullpage", "order_by": "recent", "filter": map[string]any{"limit": 2}}
	path := "search"
	for page := 0; page < 2; page++ {
		re, res := search(t, alice, path, crit)
		if re == nil || len(resultIDs(re)) != 2 {
			t.Fatalf("page %d: %d %s", page, res.Status, res.Body)
		}
		nb, ok := re["next_batch"].(string)
		if !ok {
			t.Fatalf("full page %d lacks next_batch: %s", page, res.Body)
		}
		path = "search?next_batch=" + nb
	}
	re, res := search(t, alice, path, crit)
	if re == nil || len(resultIDs(re)) != 0 || re["count"].(float64) != 4 {
		t.Fatalf("last page: %s", res.Body)
	}
	if _, ok := re["next_batch"]; ok {
		t.Fatalf("empty page has next_batch: %s", res.Body)
	}
}

package clientapi_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"parley/internal/testserver"
)

func sendRaw(t *testing.T, c *testserver.Client, room, evType string, content map[string]any) string {
	t.Helper()
	res := c.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/%s/%s", room, evType, fmt.Sprint("rtxn", txnCounter.Add(1))), content)
	return res.JSON["event_id"].(string)
}

func relatesTo(relType, parent string, extra map[string]any) map[string]any {
	c := map[string]any{"msgtype": "m.text", "body": relType, "m.relates_to": map[string]any{"rel_type": relType, "event_id": parent}}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func chunkIDs(t *testing.T, res *testserver.Response) []string {
	t.Helper()
	var out []string
	for _, e := range res.JSON["chunk"].([]any) {
		out = append(out, e.(map[string]any)["event_id"].(string))
	}
	return out
}

func v1Path(format string, a ...any) string {
	return "/_matrix/client/v1/" + testserver.Sprintf(format, a...)
}

func TestRelationsAndAggregations(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	eve := srv.Register(t, "eve")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	member(t, bob, room, "join", nil)
	member(t, carol, room, "join", nil)
	root := sendMsg(t, alice, room, "root")
	r1 := sendRaw(t, bob, room, "m.room.message", relatesTo("m.thread", root, nil))
	r2 := sendRaw(t, alice, room, "m.room.message", relatesTo("m.thread", root, nil))
	edit := sendRaw(t, alice, room, "m.room.message", relatesTo("m.replace", root, map[string]any{"m.new_content": map[string]any{"msgtype": "m.text", "body": "root!"}}))
	badEdit := sendRaw(t, bob, room, "m.room.message", relatesTo("m.replace", root, nil))
	ref := sendRaw(t, carol, room, "m.room.message", relatesTo("m.reference", root, nil))
	react := sendRaw(t, carol, room, "m.reaction", map[string]any{"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": root, "key": "👍"}})
	r3 := sendRaw(t, bob, room, "m.room.message", relatesTo("m.thread", root, nil))
	// A relation to a relation: only seen with recurse=true.
	nested := sendRaw(t, carol, room, "m.room.message", relatesTo("m.reference", r1, nil))
	sendMsg(t, alice, room, "unrelated")

	all := []string{r3, react, ref, badEdit, edit, r2, r1}
	// Backwards (default) in pages of 3.
	var got []string
	from := ""
	for page := 0; page < 10; page++ {
		path := v1Path("rooms/%s/relations/%s", room, root) + "?limit=3"
		if from != "" {
			path += "&from=" + from
		}
		res := bob.MustDo(t, http.MethodGet, path, nil)
		got = append(got, chunkIDs(t, res)...)
		next, ok := res.JSON["next_batch"].(string)
		if !ok {
			break
		}
		from = next
	}
	if !slices.Equal(got, all) {
		t.Fatalf("relations backwards: got %v want %v", got, all)
	}
	res := bob.MustDo(t, http.MethodGet, v1Path("rooms/%s/relations/%s", room, root)+"?dir=f&limit=50", nil)
	if fwd := chunkIDs(t, res); !slices.Equal(fwd, []string{r1, r2, edit, badEdit, ref, react, r3}) {
		t.Fatalf("relations forwards: %v", fwd)
	}
	if _, ok := res.JSON["next_batch"]; ok {
		t.Fatalf("next_batch on the last page: %s", res.Body)
	}
	if _, ok := res.JSON["recursion_depth"]; ok {
		t.Fatalf("recursion_depth without recurse: %s", res.Body)
	}
	res = bob.MustDo(t, http.MethodGet, v1Path("rooms/%s/relations/%s", room, root)+"?recurse=false", nil)
	if res.JSON["recursion_depth"] != float64(1) {
		t.Fatalf("recursion_depth with recurse=false: %s", res.Body)
	}
	res = bob.MustDo(t, http.MethodGet, v1Path("rooms/%s/relations/%s/m.thread", room, root), nil)
	if ids := chunkIDs(t, res); !slices.Equal(ids, []string{r3, r2, r1}) {
		t.Fatalf("m.thread relations: %v", ids)
	}
	res = bob.MustDo(t, http.MethodGet, v1Path("rooms/%s/relations/%s/m.annotation/m.reaction", room, root), nil)
	if ids := chunkIDs(t, res); !slices.Equal(ids, []string{react}) {
		t.Fatalf("annotations: %v", ids)
	}
	res = bob.MustDo(t, http.MethodGet, v1Path("rooms/%s/relations/%s/m.reference", room, root)+"?recurse=true", nil)
	if ids := chunkIDs(t, res); !slices.Equal(ids, []string{nested, ref}) || res.JSON["recursion_depth"] != float64(3) {
		t.Fatalf("recursive references: %v %s", ids, res.Body)
	}

	// Bundled aggregations on /event.
	rels := func(c *testserver.Client, ev string) map[string]any {
		t.Helper()
		res := c.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, ev), nil)
		u, _ := res.JSON["unsigned"].(map[string]any)
		m, _ := u["m.relations"].(map[string]any)
		return m
	}
	m := rels(carol, root)
	thread := m["m.thread"].(map[string]any)
	if thread["count"] != float64(3) || thread["current_user_participated"] != false ||
		thread["latest_event"].(map[string]any)["event_id"] != r3 {
		t.Fatalf("m.thread aggregation: %v", thread)
	}
	if rels(alice, root)["m.thread"].(map[string]any)["current_user_participated"] != true {
		t.Fatal("root sender participates in the thread")
	}
	if repl := m["m.replace"].(map[string]any); repl["event_id"] != edit || repl["sender"] != string(alice.UserID) {
		t.Fatalf("m.replace aggregation (bob's edit must not count): %v", repl)
	}
	if chunk := m["m.reference"].(map[string]any)["chunk"].([]any); len(chunk) != 1 || chunk[0].(map[string]any)["event_id"] != ref {
		t.Fatalf("m.reference aggregation: %v", chunk)
	}
	if rels(bob, r1)["m.reference"] == nil {
		t.Fatal("no m.reference on the thread reply")
	}
	// /messages and /context bundle too.
	res = bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/context/%s", room, root)+"?limit=2", nil)
	if _, ok := res.JSON["event"].(map[string]any)["unsigned"].(map[string]any)["m.relations"]; !ok {
		t.Fatalf("no aggregations in /context: %s", res.Body)
	}
	res = bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room)+"?dir=b&limit=50", nil)
	found := false
	for _, e := range res.JSON["chunk"].([]any) {
		ev := e.(map[string]any)
		if ev["event_id"] == root {
			_, found = ev["unsigned"].(map[string]any)["m.relations"]
		}
	}
	if !found {
		t.Fatal("no aggregations in /messages")
	}

	// /sync timelines bundle too.
	filter := `{"room":{"timeline":{"limit":50}}}`
	res = carol.MustDo(t, http.MethodGet, "sync?filter="+url.QueryEscape(filter), nil)
	tl := res.JSON["rooms"].(map[string]any)["join"].(map[string]any)[room].(map[string]any)["timeline"].(map[string]any)["events"].([]any)
	found = false
	for _, e := range tl {
		ev := e.(map[string]any)
		if ev["event_id"] == root {
			th, _ := ev["unsigned"].(map[string]any)["m.relations"].(map[string]any)["m.thread"].(map[string]any)
			found = th["count"] == float64(3)
		}
	}
	if !found {
		t.Fatalf("no m.thread aggregation in the /sync timeline: %v", tl)
	}

	// Redacting a thread reply removes it from the relations and the count.
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/redact/%s/%s", room, r3, "redact1"), map[string]any{})
	if th := rels(carol, root)["m.thread"].(map[string]any); th["count"] != float64(2) || th["latest_event"].(map[string]any)["event_id"] != r2 {
		t.Fatalf("after redaction: %v", th)
	}

	// Errors.
	wantErr(t, bob.Do(t, http.MethodGet, v1Path("rooms/%s/relations/%s", room, root)+"?dir=x", nil), http.StatusBadRequest, "M_INVALID_PARAM")
	wantErr(t, bob.Do(t, http.MethodGet, v1Path("rooms/%s/relations/%s", room, root)+"?from=zz", nil), http.StatusBadRequest, "M_INVALID_PARAM")
	wantErr(t, bob.Do(t, http.MethodGet, v1Path("rooms/%s/relations/%s", room, "$nope"), nil), http.StatusNotFound, "M_NOT_FOUND")
	private := createRoom(t, alice, map[string]any{"preset": "private_chat"})
	proot := sendMsg(t, alice, private, "secret")
	wantErr(t, eve.Do(t, http.MethodGet, v1Path("rooms/%s/relations/%s", private, proot), nil), http.StatusNotFound, "M_NOT_FOUND")
	wantErr(t, eve.Do(t, http.MethodGet, v1Path("rooms/%s/threads", private), nil), http.StatusForbidden, "M_FORBIDDEN")
}

func TestThreadsList(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	member(t, bob, room, "join", nil)
	t1 := sendMsg(t, alice, room, "t1")
	t2 := sendMsg(t, alice, room, "t2")
	t3 := sendMsg(t, bob, room, "t3")
	sendMsg(t, alice, room, "no thread")
	sendRaw(t, alice, room, "m.room.message", relatesTo("m.thread", t1, nil))
	sendRaw(t, bob, room, "m.room.message", relatesTo("m.thread", t2, nil))
	sendRaw(t, alice, room, "m.room.message", relatesTo("m.thread", t3, nil))
	sendRaw(t, alice, room, "m.room.message", relatesTo("m.thread", t1, nil)) // t1 becomes the most recent

	var got []string
	from := ""
	for page := 0; page < 10; page++ {
		path := v1Path("rooms/%s/threads", room) + "?limit=2"
		if from != "" {
			path += "&from=" + from
		}
		res := alice.MustDo(t, http.MethodGet, path, nil)
		got = append(got, chunkIDs(t, res)...)
		for _, e := range res.JSON["chunk"].([]any) {
			u := e.(map[string]any)["unsigned"].(map[string]any)
			if _, ok := u["m.relations"].(map[string]any)["m.thread"]; !ok {
				t.Fatalf("thread root without m.thread aggregation: %v", e)
			}
		}
		next, ok := res.JSON["next_batch"].(string)
		if !ok {
			break
		}
		from = next
	}
	if !slices.Equal(got, []string{t1, t3, t2}) {
		t.Fatalf("threads: got %v want %v", got, []string{t1, t3, t2})
	}
	// bob started t3 and replied in t2.
	res := bob.MustDo(t, http.MethodGet, v1Path("rooms/%s/threads", room)+"?include=participated", nil)
	if ids := chunkIDs(t, res); !slices.Equal(ids, []string{t3, t2}) {
		t.Fatalf("participated threads: %v", ids)
	}
	wantErr(t, bob.Do(t, http.MethodGet, v1Path("rooms/%s/threads", room)+"?include=mine", nil), http.StatusBadRequest, "M_INVALID_PARAM")
}

func TestThreadSummaryHidesInvisibleReplies(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	member(t, bob, room, "join", nil)
	root := sendMsg(t, alice, room, "root")
	first := sendRaw(t, alice, room, "m.room.message", relatesTo("m.thread", root, nil))
	threadOf := func() map[string]any {
		t.Helper()
		res := bob.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/event/%s", room, root), nil)
		rel, _ := res.JSON["unsigned"].(map[string]any)["m.relations"].(map[string]any)
		th, _ := rel["m.thread"].(map[string]any)
		return th
	}
	edit := sendRaw(t, alice, room, "m.room.message", relatesTo("m.replace", first, map[string]any{"m.new_content": map[string]any{"msgtype": "m.text", "body": "fixed"}}))
	th := threadOf()
	if th == nil || th["latest_event"].(map[string]any)["event_id"] != first {
		t.Fatalf("thread summary while joined: %v", th)
	}
	// The latest event carries its own bundled edit.
	u, _ := th["latest_event"].(map[string]any)["unsigned"].(map[string]any)
	rel, _ := u["m.relations"].(map[string]any)
	if repl, _ := rel["m.replace"].(map[string]any); repl["event_id"] != edit {
		t.Fatalf("latest_event without its edit: %v", th["latest_event"])
	}
	member(t, bob, room, "leave", nil)
	sendRaw(t, alice, room, "m.room.message", relatesTo("m.thread", root, map[string]any{"body": "secret"}))
	if th := threadOf(); th != nil {
		t.Fatalf("bob left but sees the reply sent since: %v", th)
	}
}

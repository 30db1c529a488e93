package syncapi_test

import (
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"parley/internal/testserver"
)

var txn atomic.Int64

func createRoom(t *testing.T, c *testserver.Client, body map[string]any) string {
	t.Helper()
	return c.MustDo(t, http.MethodPost, "createRoom", body).JSON["room_id"].(string)
}

func send(t *testing.T, c *testserver.Client, room, text string) string {
	t.Helper()
	res := c.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/%s", room, fmt.Sprint("t", txn.Add(1))),
		map[string]any{"msgtype": "m.text", "body": text})
	return res.JSON["event_id"].(string)
}

func doSync(t *testing.T, c *testserver.Client, params url.Values) *testserver.Response {
	t.Helper()
	return c.MustDo(t, http.MethodGet, "sync?"+params.Encode(), nil)
}

func section(res *testserver.Response, kind, room string) map[string]any {
	rooms, _ := res.JSON["rooms"].(map[string]any)
	if rooms == nil {
		return nil
	}
	k, _ := rooms[kind].(map[string]any)
	if k == nil {
		return nil
	}
	r, _ := k[room].(map[string]any)
	return r
}

func timelineBodies(r map[string]any) []string {
	var out []string
	for _, e := range r["timeline"].(map[string]any)["events"].([]any) {
		ev := e.(map[string]any)
		if ev["type"] == "m.room.message" {
			out = append(out, ev["content"].(map[string]any)["body"].(string))
		}
	}
	return out
}

func TestSyncInitialAndLongPoll(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Lobby"})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	send(t, alice, room, "hello")

	res := doSync(t, bob, nil)
	jr := section(res, "join", room)
	if jr == nil {
		t.Fatalf("room not in initial sync: %s", res.Body)
	}
	if b := timelineBodies(jr); len(b) != 1 || b[0] != "hello" {
		t.Fatalf("timeline: %v", b)
	}
	stateTypes := map[string]bool{}
	for _, e := range jr["state"].(map[string]any)["events"].([]any) {
		stateTypes[e.(map[string]any)["type"].(string)] = true
	}
	tlTypes := map[string]bool{}
	for _, e := range jr["timeline"].(map[string]any)["events"].([]any) {
		tlTypes[e.(map[string]any)["type"].(string)] = true
	}
	if !(stateTypes["m.room.create"] || tlTypes["m.room.create"]) || !(stateTypes["m.room.name"] || tlTypes["m.room.name"]) {
		t.Fatalf("state missing: %s", res.Body)
	}
	sum := jr["summary"].(map[string]any)
	if sum["m.joined_member_count"] != 2.0 || sum["m.heroes"] != nil {
		t.Fatalf("summary of a named room: %v", sum)
	}
	unnamed := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", unnamed), map[string]any{})
	res = doSync(t, bob, nil)
	sum = section(res, "join", unnamed)["summary"].(map[string]any)
	if h := sum["m.heroes"].([]any); len(h) != 1 || h[0] != string(alice.UserID) {
		t.Fatalf("heroes of an unnamed room: %v", sum)
	}
	next := res.JSON["next_batch"].(string)

	// Bob long-polls; Alice's message must wake him promptly.
	done := make(chan *testserver.Response, 1)
	start := time.Now()
	go func() {
		done <- bob.Do(t, http.MethodGet, "sync?"+url.Values{"since": {next}, "timeout": {"10000"}}.Encode(), nil)
	}()
	time.Sleep(100 * time.Millisecond)
	send(t, alice, room, "wake up")
	select {
	case res = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("long-poll was not woken")
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("long-poll took %v", time.Since(start))
	}
	jr = section(res, "join", room)
	if jr == nil {
		t.Fatalf("incremental sync lacks the room: %s", res.Body)
	}
	if b := timelineBodies(jr); len(b) != 1 || b[0] != "wake up" {
		t.Fatalf("incremental timeline: %v (%s)", b, res.Body)
	}
	if jr["timeline"].(map[string]any)["limited"] != false || len(jr["state"].(map[string]any)["events"].([]any)) != 0 {
		t.Fatalf("incremental should be unlimited with no state: %s", res.Body)
	}
	// An idle long-poll times out with no rooms.
	next = res.JSON["next_batch"].(string)
	res = doSync(t, bob, url.Values{"since": {next}, "timeout": {"50"}})
	if section(res, "join", room) != nil {
		t.Fatalf("idle sync has the room: %s", res.Body)
	}
}

func TestSyncInviteJoinLeave(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	res := doSync(t, bob, nil)
	next := res.JSON["next_batch"].(string)

	room := createRoom(t, alice, map[string]any{"preset": "private_chat", "name": "Secret", "invite": []string{string(bob.UserID)}, "is_direct": true})
	res = doSync(t, bob, url.Values{"since": {next}, "timeout": {"5000"}})
	inv := section(res, "invite", room)
	if inv == nil {
		t.Fatalf("invite missing: %s", res.Body)
	}
	types := map[string]bool{}
	for _, e := range inv["invite_state"].(map[string]any)["events"].([]any) {
		ev := e.(map[string]any)
		types[ev["type"].(string)] = true
		if ev["type"] == "m.room.member" && ev["state_key"] == string(alice.UserID) {
			types["inviter"] = true // the inviter's membership, to show who invited
			continue
		}
		if ev["type"] == "m.room.member" && (ev["state_key"] != string(bob.UserID) || ev["content"].(map[string]any)["is_direct"] != true) {
			t.Fatalf("invite event: %v", ev)
		}
	}
	if !types["inviter"] {
		t.Fatalf("invite_state without the inviter's membership: %s", res.Body)
	}
	if !types["m.room.create"] || !types["m.room.name"] || !types["m.room.join_rules"] || !types["m.room.member"] {
		t.Fatalf("invite_state: %s", res.Body)
	}
	next = res.JSON["next_batch"].(string)

	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	res = doSync(t, bob, url.Values{"since": {next}, "timeout": {"5000"}})
	if section(res, "invite", room) != nil {
		t.Fatalf("still invited: %s", res.Body)
	}
	jr := section(res, "join", room)
	if jr == nil {
		t.Fatalf("join missing: %s", res.Body)
	}
	// A newly joined room comes with its full state (state + timeline cover create).
	found := false
	for _, part := range []string{"state", "timeline"} {
		for _, e := range jr[part].(map[string]any)["events"].([]any) {
			if e.(map[string]any)["type"] == "m.room.create" {
				found = true
			}
		}
	}
	if !found {
		t.Fatalf("newly joined room lacks full state: %s", res.Body)
	}
	next = res.JSON["next_batch"].(string)

	// Kick → rooms.leave
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/kick", room), map[string]any{"user_id": string(bob.UserID)})
	res = doSync(t, bob, url.Values{"since": {next}, "timeout": {"5000"}})
	lr := section(res, "leave", room)
	if lr == nil || section(res, "join", room) != nil {
		t.Fatalf("kick not in rooms.leave: %s", res.Body)
	}
	evs := lr["timeline"].(map[string]any)["events"].([]any)
	last := evs[len(evs)-1].(map[string]any)
	if last["type"] != "m.room.member" || last["content"].(map[string]any)["membership"] != "leave" {
		t.Fatalf("leave timeline: %s", res.Body)
	}
	// Later messages do not reach Bob.
	next = res.JSON["next_batch"].(string)
	send(t, alice, room, "after kick")
	res = doSync(t, bob, url.Values{"since": {next}, "timeout": {"100"}})
	if section(res, "leave", room) != nil || section(res, "join", room) != nil {
		t.Fatalf("kicked user got room events: %s", res.Body)
	}
	// Initial sync shows the left room only with include_leave.
	res = doSync(t, bob, nil)
	if section(res, "leave", room) != nil {
		t.Fatalf("left room in initial sync without include_leave: %s", res.Body)
	}
	res = doSync(t, bob, url.Values{"filter": {`{"room":{"include_leave":true}}`}})
	if section(res, "leave", room) == nil {
		t.Fatalf("include_leave: %s", res.Body)
	}
}

// TestSyncLimitedGap: a limited incremental timeline's prev_batch, passed to
// /messages, returns exactly the events the sync skipped.
func TestSyncLimitedGap(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	res := doSync(t, alice, nil)
	since := res.JSON["next_batch"].(string)
	for i := 0; i < 12; i++ {
		send(t, alice, room, fmt.Sprint(i))
	}
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.topic/", room), map[string]any{"topic": "new"})
	for i := 12; i < 15; i++ {
		send(t, alice, room, fmt.Sprint(i))
	}
	res = doSync(t, alice, url.Values{"since": {since}, "filter": {`{"room":{"timeline":{"limit":3}}}`}})
	jr := section(res, "join", room)
	tl := jr["timeline"].(map[string]any)
	if tl["limited"] != true {
		t.Fatalf("not limited: %s", res.Body)
	}
	if b := timelineBodies(jr); len(b) != 3 || b[0] != "12" || b[2] != "14" {
		t.Fatalf("timeline: %v", b)
	}
	// The state delta carries the topic change that fell in the gap.
	st := jr["state"].(map[string]any)["events"].([]any)
	if len(st) != 1 || st[0].(map[string]any)["type"] != "m.room.topic" {
		t.Fatalf("state delta: %s", res.Body)
	}
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room)+"?dir=b&limit=100&from="+url.QueryEscape(tl["prev_batch"].(string))+"&to="+url.QueryEscape(since), nil)
	var got []string
	for _, e := range res.JSON["chunk"].([]any) {
		ev := e.(map[string]any)
		if ev["type"] == "m.room.message" {
			got = append(got, ev["content"].(map[string]any)["body"].(string))
		} else if ev["type"] != "m.room.topic" {
			t.Fatalf("unexpected event in gap: %v", ev)
		}
	}
	if len(got) != 12 || got[0] != "11" || got[11] != "0" {
		t.Fatalf("gap: %v", got)
	}
	// The next page (from end, still bounded by since) is empty and has no end.
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room)+"?dir=b&limit=100&from="+url.QueryEscape(res.JSON["end"].(string))+"&to="+url.QueryEscape(since), nil)
	if _, ok := res.JSON["end"]; ok || len(res.JSON["chunk"].([]any)) != 0 {
		t.Fatalf("gap pagination should end at since: %s", res.Body)
	}
}

func TestSyncTokensSurviveRestart(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	send(t, alice, room, "one")
	next := doSync(t, alice, nil).JSON["next_batch"].(string)
	cfg := srv.Cfg
	srv.Close()

	srv2 := testserver.Start(t, cfg)
	alice.S = srv2
	send(t, alice, room, "two")
	res := doSync(t, alice, url.Values{"since": {next}, "timeout": {"2000"}})
	jr := section(res, "join", room)
	if jr == nil {
		t.Fatalf("room missing after restart: %s", res.Body)
	}
	if b := timelineBodies(jr); len(b) != 1 || b[0] != "two" {
		t.Fatalf("after restart: %v", b)
	}
	// The restarted server keeps building on the same DAG.
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/messages", room)+"?dir=b&limit=3", nil)
	if len(res.JSON["chunk"].([]any)) != 3 {
		t.Fatalf("messages after restart: %s", res.Body)
	}
}

func TestSyncKnockAndFilters(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	knockRoom := createRoom(t, alice, map[string]any{"room_version": "10", "name": "Knock here",
		"initial_state": []map[string]any{{"type": "m.room.join_rules", "content": map[string]any{"join_rule": "knock"}}}})
	next := doSync(t, bob, nil).JSON["next_batch"].(string)
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("knock/%s", knockRoom), map[string]any{})
	res := doSync(t, bob, url.Values{"since": {next}, "timeout": {"2000"}})
	kr := section(res, "knock", knockRoom)
	if kr == nil {
		t.Fatalf("knock missing: %s", res.Body)
	}
	types := map[string]bool{}
	for _, e := range kr["knock_state"].(map[string]any)["events"].([]any) {
		types[e.(map[string]any)["type"].(string)] = true
	}
	if !types["m.room.name"] || !types["m.room.member"] {
		t.Fatalf("knock_state: %s", res.Body)
	}

	// Filters: rooms, timeline types, senders, lazy-loaded members.
	r1 := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	r2 := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	for _, r := range []string{r1, r2} {
		bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", r), map[string]any{})
	}
	send(t, alice, r1, "from alice")
	send(t, bob, r1, "from bob")
	carol := srv.Register(t, "carol")
	carol.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", r1), map[string]any{})

	res = doSync(t, bob, url.Values{"filter": {fmt.Sprintf(`{"room":{"rooms":[%q]}}`, r1)}})
	if section(res, "join", r1) == nil || section(res, "join", r2) != nil {
		t.Fatalf("rooms filter: %s", res.Body)
	}
	res = doSync(t, bob, url.Values{"filter": {`{"room":{"timeline":{"types":["m.room.message"],"limit":50}}}`}})
	for _, e := range section(res, "join", r1)["timeline"].(map[string]any)["events"].([]any) {
		if e.(map[string]any)["type"] != "m.room.message" {
			t.Fatalf("timeline types filter let through %v", e)
		}
	}
	res = doSync(t, bob, url.Values{"filter": {fmt.Sprintf(`{"room":{"timeline":{"senders":[%q],"limit":50}}}`, alice.UserID)}})
	if b := timelineBodies(section(res, "join", r1)); len(b) != 1 || b[0] != "from alice" {
		t.Fatalf("senders filter: %v", b)
	}
	// Lazy loading with a 1-event timeline (bob's message): only bob's member event in state.
	res = doSync(t, bob, url.Values{"filter": {`{"room":{"timeline":{"limit":1,"types":["m.room.message"]},"state":{"lazy_load_members":true}}}`}})
	for _, e := range section(res, "join", r1)["state"].(map[string]any)["events"].([]any) {
		ev := e.(map[string]any)
		if ev["type"] == "m.room.member" && ev["state_key"] == string(carol.UserID) {
			t.Fatalf("lazy loading sent carol's member event: %s", res.Body)
		}
	}
}

// TestSyncWakeAfterRestart: after a restart the notifier knows room members again.
func TestSyncWakeAfterRestart(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	cfg := srv.Cfg
	srv.Close()
	srv2 := testserver.Start(t, cfg)
	alice.S, bob.S = srv2, srv2
	next := doSync(t, bob, nil).JSON["next_batch"].(string)
	done := make(chan *testserver.Response, 1)
	go func() {
		done <- bob.Do(t, http.MethodGet, "sync?"+url.Values{"since": {next}, "timeout": {"20000"}}.Encode(), nil)
	}()
	time.Sleep(100 * time.Millisecond)
	send(t, alice, room, "ping")
	select {
	case res := <-done:
		if b := timelineBodies(section(res, "join", room)); len(b) != 1 || b[0] != "ping" {
			t.Fatalf("woken sync: %s", res.Body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("long-poll not woken after restart")
	}
}

// TestSyncProfileChange: a displayname change reaches rooms as a new member
// event, and is not treated as a fresh join (no full state).
func TestSyncProfileChange(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	next := doSync(t, bob, nil).JSON["next_batch"].(string)
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("profile/%s/displayname", bob.UserID), map[string]any{"displayname": "Bobby"})
	res := doSync(t, bob, url.Values{"since": {next}, "timeout": {"2000"}})
	jr := section(res, "join", room)
	if jr == nil {
		t.Fatalf("no room after profile change: %s", res.Body)
	}
	evs := jr["timeline"].(map[string]any)["events"].([]any)
	last := evs[len(evs)-1].(map[string]any)
	if last["type"] != "m.room.member" || last["content"].(map[string]any)["displayname"] != "Bobby" || last["content"].(map[string]any)["membership"] != "join" {
		t.Fatalf("member event: %s", res.Body)
	}
	if len(jr["state"].(map[string]any)["events"].([]any)) != 0 {
		t.Fatalf("profile change resent the state: %s", res.Body)
	}
	// Joins carry the profile too.
	carol := srv.Register(t, "carol")
	carol.MustDo(t, http.MethodPut, testserver.Sprintf("profile/%s/displayname", carol.UserID), map[string]any{"displayname": "Caz"})
	carol.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	res = alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/joined_members", room), nil)
	if m := res.JSON["joined"].(map[string]any)[string(carol.UserID)].(map[string]any); m["display_name"] != "Caz" {
		t.Fatalf("joined_members: %s", res.Body)
	}
}

func TestSyncTimelineLimits(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	send(t, alice, room, "first")
	for i := 0; i < 12; i++ {
		alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/a.filler/%s", room, fmt.Sprint("f", i)), map[string]any{})
	}
	// A type filter still fills its limit from further back.
	res := doSync(t, alice, url.Values{"filter": {`{"room":{"timeline":{"types":["m.room.message"],"limit":1}}}`}})
	if b := timelineBodies(section(res, "join", room)); len(b) != 1 || b[0] != "first" {
		t.Fatalf("filtered timeline: %s", res.Body)
	}
	// limit 0: no timeline events, state only.
	res = doSync(t, alice, url.Values{"filter": {`{"room":{"timeline":{"limit":0},"state":{"types":["m.room.member"]}}}`}})
	jr := section(res, "join", room)
	if n := len(jr["timeline"].(map[string]any)["events"].([]any)); n != 0 || jr["timeline"].(map[string]any)["limited"] != true {
		t.Fatalf("limit 0: %s", res.Body)
	}
	if st := jr["state"].(map[string]any)["events"].([]any); len(st) != 1 || st[0].(map[string]any)["type"] != "m.room.member" {
		t.Fatalf("state filter: %s", res.Body)
	}

	// Joined and left within one batch: rooms.leave carries the full state.
	next := doSync(t, bob, nil).JSON["next_batch"].(string)
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/leave", room), map[string]any{})
	res = doSync(t, bob, url.Values{"since": {next}, "filter": {`{"room":{"timeline":{"limit":1}}}`}})
	lr := section(res, "leave", room)
	if lr == nil {
		t.Fatalf("left room missing: %s", res.Body)
	}
	found := false
	for _, e := range lr["state"].(map[string]any)["events"].([]any) {
		if e.(map[string]any)["type"] == "m.room.create" {
			found = true
		}
	}
	if !found {
		t.Fatalf("join+leave in one batch lacks full state: %s", res.Body)
	}
}

// TestSyncLazyMembersIncremental: with lazy-loaded members, an incremental
// sync carries the member events of the timeline's senders.
func TestSyncLazyMembersIncremental(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	for _, c := range []*testserver.Client{bob, carol} {
		c.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	}
	for i := 0; i < 3; i++ {
		send(t, bob, room, "from bob")
	}
	filter := `{"room":{"timeline":{"limit":3},"state":{"lazy_load_members":true}}}`
	res := doSync(t, alice, url.Values{"filter": {filter}})
	members := func(res *testserver.Response) map[string]bool {
		out := map[string]bool{}
		for _, e := range section(res, "join", room)["state"].(map[string]any)["events"].([]any) {
			if ev := e.(map[string]any); ev["type"] == "m.room.member" {
				out[ev["state_key"].(string)] = true
			}
		}
		return out
	}
	if m := members(res); len(m) != 2 || !m[string(alice.UserID)] || !m[string(bob.UserID)] {
		t.Fatalf("initial lazy members: %v", m)
	}
	send(t, carol, room, "from carol")
	res = doSync(t, alice, url.Values{"filter": {filter}, "since": {res.JSON["next_batch"].(string)}})
	if m := members(res); len(m) != 1 || !m[string(carol.UserID)] {
		t.Fatalf("incremental lazy members: %v (%s)", m, res.Body)
	}
	// Carol speaks again: her member event is not resent, unless asked.
	since := res.JSON["next_batch"].(string)
	send(t, carol, room, "again")
	res = doSync(t, alice, url.Values{"filter": {filter}, "since": {since}})
	if m := members(res); len(m) != 0 {
		t.Fatalf("redundant member sent: %v", m)
	}
	redundant := `{"room":{"timeline":{"limit":3},"state":{"lazy_load_members":true,"include_redundant_members":true}}}`
	res = doSync(t, alice, url.Values{"filter": {redundant}, "since": {since}})
	if m := members(res); len(m) != 1 || !m[string(carol.UserID)] {
		t.Fatalf("include_redundant_members: %v", m)
	}
}

// TestSyncCurrentStateAlwaysShown: with history_visibility joined, a member
// who rejoins still sees current state set while they were away.
func TestSyncCurrentStateAlwaysShown(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.history_visibility/", room), map[string]any{"history_visibility": "joined"})
	next := doSync(t, bob, nil).JSON["next_batch"].(string)
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/leave", room), map[string]any{})
	send(t, alice, room, "hidden")
	carol.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	res := doSync(t, bob, url.Values{"since": {next}})
	jr := section(res, "join", room)
	sawCarol := false
	for _, e := range jr["timeline"].(map[string]any)["events"].([]any) {
		ev := e.(map[string]any)
		if ev["type"] == "m.room.message" {
			t.Fatalf("message from while bob was away is visible: %v", ev)
		}
		if ev["type"] == "m.room.member" && ev["state_key"] == string(carol.UserID) {
			sawCarol = true
		}
	}
	if !sawCarol {
		t.Fatalf("carol's join (current state) missing: %s", res.Body)
	}
}

func TestSyncFederationFormat(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	room := createRoom(t, alice, map[string]any{})
	ev := send(t, alice, room, "x")
	res := doSync(t, alice, url.Values{"filter": {`{"event_format":"federation","room":{"timeline":{"limit":1}}}`}})
	got := section(res, "join", room)["timeline"].(map[string]any)["events"].([]any)[0].(map[string]any)
	for _, k := range []string{"event_id", "content", "room_id", "sender", "origin_server_ts", "type", "prev_events", "auth_events", "depth", "hashes", "signatures"} {
		if _, ok := got[k]; !ok {
			t.Fatalf("federation format lacks %s: %v", k, got)
		}
	}
	if got["event_id"] != ev {
		t.Fatalf("event_id %v, want %s", got["event_id"], ev)
	}
}

// TestSummaryCountsInInitialSync: an initial sync's member counts and
// heroes are the same whether they come from the full state it carries or,
// with lazy-loaded members, from storage; memberships changed inside the
// timeline count too.
func TestSummaryCountsInInitialSync(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	dave := srv.Register(t, "dave")
	erin := srv.Register(t, "erin")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	carol.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	carol.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/leave", room), map[string]any{})
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/invite", room), map[string]any{"user_id": dave.UserID})
	for i := 0; i < 15; i++ {
		send(t, alice, room, fmt.Sprint("m", i))
	}
	erin.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{}) // inside the timeline
	want := map[string]any{"m.joined_member_count": 3.0, "m.invited_member_count": 1.0,
		"m.heroes": []any{string(bob.UserID), string(dave.UserID), string(erin.UserID)}}
	for name, filter := range map[string]string{
		"full state":      "",
		"lazy members":    `{"room":{"state":{"lazy_load_members":true}}}`,
		"timeline filter": `{"room":{"timeline":{"types":["m.room.message"]}}}`,
	} {
		q := "sync"
		if filter != "" {
			q += "?filter=" + url.QueryEscape(filter)
		}
		res := alice.MustDo(t, http.MethodGet, q, nil)
		sum := section(res, "join", room)["summary"].(map[string]any)
		if fmt.Sprint(sum) != fmt.Sprint(want) {
			t.Fatalf("%s: summary %v, want %v", name, sum, want)
		}
	}
}

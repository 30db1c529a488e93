package syncapi_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"parley/internal/config"
	"parley/internal/testserver"
)

const ssPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

// ssResp is a decoded sliding sync response.
type ssResp struct {
	Pos   string `json:"pos"`
	Lists map[string]struct {
		Count int `json:"count"`
	} `json:"lists"`
	Rooms      map[string]*ssRoomResp     `json:"rooms"`
	Extensions map[string]json.RawMessage `json:"extensions"`
}

// ssEvent is an event of a room result.
type ssEvent struct {
	Type     string          `json:"type"`
	Sender   string          `json:"sender"`
	StateKey *string         `json:"state_key"`
	Content  json.RawMessage `json:"content"`
}

func (e ssEvent) content() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(e.Content, &m)
	return m
}

type ssRoomResp struct {
	Name              *string          `json:"name"`
	Heroes            []map[string]any `json:"heroes"`
	Initial           bool             `json:"initial"`
	ExpandedTimeline  bool             `json:"expanded_timeline"`
	RequiredState     []ssEvent        `json:"required_state"`
	Timeline          []ssEvent        `json:"timeline"`
	InviteState       []ssEvent        `json:"invite_state"`
	PrevBatch         string           `json:"prev_batch"`
	Limited           *bool            `json:"limited"`
	NumLive           *int             `json:"num_live"`
	JoinedCount       *int             `json:"joined_count"`
	InvitedCount      *int             `json:"invited_count"`
	NotificationCount *int             `json:"notification_count"`
	HighlightCount    *int             `json:"highlight_count"`
	BumpStamp         *int64           `json:"bump_stamp"`
	IsDM              *bool            `json:"is_dm"`
	Membership        string           `json:"membership"`
	Lists             []string         `json:"lists"`
}

// slide sends one sliding sync request; pos and timeout go in the query
// string, as Element X sends them.
func slide(t *testing.T, c *testserver.Client, pos string, timeoutMS int, body map[string]any) *ssResp {
	t.Helper()
	path := ssPath + "?timeout=" + itoa(timeoutMS)
	if pos != "" {
		path += "&pos=" + pos
	}
	res := c.MustDo(t, http.MethodPost, path, body)
	var out ssResp
	if err := json.Unmarshal(res.Body, &out); err != nil {
		t.Fatalf("decode: %v: %s", err, res.Body)
	}
	if out.Pos == "" {
		t.Fatalf("no pos: %s", res.Body)
	}
	return &out
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func bodies(evs []ssEvent) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == "m.room.message" {
			out = append(out, ev.content()["body"].(string))
		}
	}
	return out
}

func stateKeys(evs []ssEvent, typ string) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == typ {
			out = append(out, *ev.StateKey)
		}
	}
	slices.Sort(out)
	return out
}

func roomIDs(r *ssResp) []string {
	var out []string
	for id := range r.Rooms {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// TestSlidingSyncSession follows a client session: a first request with two
// lists, incremental requests after new messages, a room moving to the top,
// an invite appearing in the invite list and the join that follows.
func TestSlidingSyncSession(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	r1 := createRoom(t, alice, map[string]any{"name": "one"})
	r2 := createRoom(t, alice, map[string]any{"name": "two"})
	r3 := createRoom(t, alice, map[string]any{"name": "three"})
	send(t, alice, r3, "three-a")
	send(t, alice, r2, "two-a")
	send(t, alice, r1, "one-a")
	send(t, alice, r1, "one-b")

	lists := map[string]any{
		"all": map[string]any{"ranges": [][]int{{0, 1}}, "timeline_limit": 1,
			"required_state": [][]string{{"m.room.create", ""}, {"m.room.name", ""}},
			"filters":        map[string]any{"is_invite": false}},
		"invites": map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 0,
			"required_state": [][]string{}, "filters": map[string]any{"is_invite": true}},
	}
	body := map[string]any{"conn_id": "room-list", "lists": lists}
	first := slide(t, alice, "", 0, body)
	if first.Lists["all"].Count != 3 || first.Lists["invites"].Count != 0 {
		t.Fatalf("counts: %+v", first.Lists)
	}
	if got, want := roomIDs(first), sorted(r1, r2); !slices.Equal(got, want) {
		t.Fatalf("first window: got %v, want the two most recent %v", got, want)
	}
	room := first.Rooms[r1]
	if !room.Initial || room.Name == nil || *room.Name != "one" || room.Membership != "join" {
		t.Fatalf("room one: %+v", room)
	}
	if got := bodies(room.Timeline); !slices.Equal(got, []string{"one-b"}) || room.Limited == nil || !*room.Limited {
		t.Fatalf("timeline: %v limited %v", got, room.Limited)
	}
	if got := stateKeys(room.RequiredState, "m.room.create"); len(got) != 1 || len(room.RequiredState) != 2 {
		t.Fatalf("required_state: %+v", room.RequiredState)
	}
	if *room.JoinedCount != 1 || *room.InvitedCount != 0 || room.BumpStamp == nil || *room.NumLive != 0 || room.PrevBatch == "" {
		t.Fatalf("counts: %+v", room)
	}
	if !slices.Equal(room.Lists, []string{"all"}) {
		t.Fatalf("lists: %v", room.Lists)
	}
	if *first.Rooms[r1].BumpStamp <= *first.Rooms[r2].BumpStamp {
		t.Fatalf("bump stamps out of order")
	}

	// Nothing changed: an immediate empty answer with a new pos.
	idle := slide(t, alice, first.Pos, 0, body)
	if len(idle.Rooms) != 0 || idle.Pos == first.Pos {
		t.Fatalf("idle: %+v", idle)
	}

	// A new message in the window: only that event, not initial, live.
	send(t, alice, r2, "two-b")
	inc := slide(t, alice, idle.Pos, 0, body)
	if got := roomIDs(inc); !slices.Equal(got, []string{r2}) {
		t.Fatalf("incremental rooms: %v", got)
	}
	if r := inc.Rooms[r2]; r.Initial || r.Name != nil || !slices.Equal(bodies(r.Timeline), []string{"two-b"}) || *r.NumLive != 1 || *r.Limited {
		t.Fatalf("incremental room: %+v", r)
	}

	// Room three moves to the top on a new message; room one leaves the window.
	send(t, alice, r3, "three-b")
	moved := slide(t, alice, inc.Pos, 0, body)
	if r := moved.Rooms[r3]; r == nil || !r.Initial || !slices.Equal(bodies(r.Timeline), []string{"three-b"}) || *r.NumLive != 1 {
		t.Fatalf("room three did not move into the window: %+v", moved.Rooms)
	}
	if _, ok := moved.Rooms[r1]; ok {
		t.Fatalf("room one has no news and must not be sent")
	}

	// Long-poll: bob's invite wakes alice and shows in the invite list.
	bobRoom := createRoom(t, bob, map[string]any{"name": "bob's"})
	done := make(chan *ssResp, 1)
	go func() { done <- slide(t, alice, moved.Pos, 10000, body) }()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/invite", bobRoom), map[string]any{"user_id": alice.UserID})
	var inv *ssResp
	select {
	case inv = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("long-poll not woken by the invite")
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("woken late")
	}
	if inv.Lists["invites"].Count != 1 || inv.Lists["all"].Count != 3 {
		t.Fatalf("counts after invite: %+v", inv.Lists)
	}
	ir := inv.Rooms[bobRoom]
	if ir == nil || ir.Membership != "invite" || !ir.Initial || len(ir.InviteState) == 0 || !slices.Equal(ir.Lists, []string{"invites"}) {
		t.Fatalf("invite room: %+v", ir)
	}
	if got := stateKeys(ir.InviteState, "m.room.name"); len(got) != 1 {
		t.Fatalf("invite_state lacks the name: %+v", ir.InviteState)
	}

	// Joining moves it from the invite list to the room list, in full.
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", bobRoom), map[string]any{})
	joined := slide(t, alice, inv.Pos, 0, body)
	if joined.Lists["invites"].Count != 0 || joined.Lists["all"].Count != 4 {
		t.Fatalf("counts after join: %+v", joined.Lists)
	}
	jr := joined.Rooms[bobRoom]
	if jr == nil || jr.Membership != "join" || !jr.Initial || *jr.JoinedCount != 2 {
		t.Fatalf("joined room: %+v", jr)
	}

	// A retried request with an already used pos gets the same answer again.
	again := slide(t, alice, inv.Pos, 0, body)
	if again.Rooms[bobRoom] == nil || !again.Rooms[bobRoom].Initial {
		t.Fatalf("retry with the same pos lost the room: %+v", again.Rooms)
	}
}

// TestSlidingSyncLazyMembers checks $LAZY: only the timeline's senders'
// member events, and $ME.
func TestSlidingSyncLazyMembers(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	for _, c := range []*testserver.Client{bob, carol} {
		c.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	}
	send(t, carol, room, "carol speaks")
	send(t, bob, room, "bob 1")
	send(t, bob, room, "bob 2")
	sub := func(rs any) map[string]any {
		return map[string]any{"room_subscriptions": map[string]any{room: map[string]any{"timeline_limit": 2, "required_state": rs}}}
	}
	first := slide(t, alice, "", 0, sub([][]string{{"m.room.member", "$LAZY"}}))
	r := first.Rooms[room]
	if r == nil {
		t.Fatalf("subscribed room missing")
	}
	if got := stateKeys(r.RequiredState, "m.room.member"); !slices.Equal(got, []string{string(bob.UserID)}) {
		t.Fatalf("lazy members: got %v, want only bob", got)
	}
	if len(r.RequiredState) != 1 {
		t.Fatalf("only member events asked: %+v", r.RequiredState)
	}
	// Carol speaks again: her member event comes now, bob's is not repeated.
	send(t, carol, room, "carol again")
	next := slide(t, alice, first.Pos, 0, sub([][]string{{"m.room.member", "$LAZY"}}))
	if got := stateKeys(next.Rooms[room].RequiredState, "m.room.member"); !slices.Equal(got, []string{string(carol.UserID)}) {
		t.Fatalf("second lazy batch: %v", got)
	}
	// Subscriptions stay in force until unsubscribed (matrix-js-sdk sends each once).
	send(t, bob, room, "bob 3")
	sticky := slide(t, alice, next.Pos, 0, map[string]any{})
	if r := sticky.Rooms[room]; r == nil || !slices.Equal(bodies(r.Timeline), []string{"bob 3"}) {
		t.Fatalf("subscription not kept: %+v", sticky.Rooms)
	}
	send(t, bob, room, "bob 4")
	if gone := slide(t, alice, sticky.Pos, 0, map[string]any{"unsubscribe_rooms": []string{room}}); len(gone.Rooms) != 0 {
		t.Fatalf("unsubscribed room still sent: %v", roomIDs(gone))
	}
	// $ME and the object form of required_state.
	me := slide(t, alice, "", 0, sub(map[string]any{"include": []map[string]any{{"type": "m.room.member", "state_key": "$ME"}}}))
	if got := stateKeys(me.Rooms[room].RequiredState, "m.room.member"); !slices.Equal(got, []string{string(alice.UserID)}) {
		t.Fatalf("$ME: %v", got)
	}
	// Wildcards: every state event, members lazily (the timeline is
	// "bob 3", "bob 4": carol's and alice's member events are left out).
	all := slide(t, alice, "", 0, sub([][]string{{"*", "*"}, {"m.room.member", "$LAZY"}}))
	rs := all.Rooms[room].RequiredState
	if got := stateKeys(rs, "m.room.member"); !slices.Equal(got, []string{string(bob.UserID)}) || len(stateKeys(rs, "m.room.power_levels")) != 1 {
		t.Fatalf("wildcard: %+v", rs)
	}
	// A room the user is not in is ignored.
	other := createRoom(t, bob, map[string]any{})
	res := slide(t, alice, "", 0, map[string]any{"room_subscriptions": map[string]any{other: map[string]any{"timeline_limit": 5}}})
	if len(res.Rooms) != 0 {
		t.Fatalf("leaked a room the user is not in: %v", roomIDs(res))
	}
}

// TestSlidingSyncFilters checks is_dm, is_encrypted, room_types,
// not_room_types and spaces.
func TestSlidingSyncFilters(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	plain := createRoom(t, alice, map[string]any{})
	enc := createRoom(t, alice, map[string]any{"initial_state": []map[string]any{
		{"type": "m.room.encryption", "state_key": "", "content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}}})
	space := createRoom(t, alice, map[string]any{"creation_content": map[string]any{"type": "m.space"}})
	dm := createRoom(t, alice, map[string]any{"is_direct": true, "invite": []string{string(bob.UserID)}})
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.space.child/%s", space, plain),
		map[string]any{"via": []string{"hs1.test"}})
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("user/%s/account_data/m.direct", alice.UserID),
		map[string]any{string(bob.UserID): []string{dm}})
	list := func(f map[string]any) map[string]any {
		return map[string]any{"ranges": [][]int{{0, 20}}, "timeline_limit": 0, "required_state": [][]string{}, "filters": f}
	}
	res := slide(t, alice, "", 0, map[string]any{"lists": map[string]any{
		"dm":       list(map[string]any{"is_dm": true}),
		"not_dm":   list(map[string]any{"is_dm": false}),
		"enc":      list(map[string]any{"is_encrypted": true}),
		"spaces":   list(map[string]any{"room_types": []any{"m.space"}}),
		"rooms":    list(map[string]any{"not_room_types": []any{"m.space"}}),
		"untyped":  list(map[string]any{"room_types": []any{nil}}),
		"in_space": list(map[string]any{"spaces": []string{space}}),
	}})
	want := map[string][]string{
		"dm": {dm}, "not_dm": {plain, enc, space}, "enc": {enc}, "spaces": {space},
		"rooms": {plain, enc, dm}, "untyped": {plain, enc, dm}, "in_space": {plain},
	}
	for name, rooms := range want {
		if res.Lists[name].Count != len(rooms) {
			t.Errorf("list %s: count %d, want %d", name, res.Lists[name].Count, len(rooms))
		}
		for _, r := range rooms {
			if !slices.Contains(res.Rooms[r].Lists, name) {
				t.Errorf("list %s lacks %s (room lists %v)", name, r, res.Rooms[r].Lists)
			}
		}
	}
	if d := res.Rooms[dm].IsDM; d == nil || !*d {
		t.Errorf("dm room without is_dm")
	}
	if res.Rooms[plain].IsDM != nil {
		t.Errorf("non-DM room with is_dm")
	}
	// Bob sees the DM invite (is_direct) as a DM.
	bobView := slide(t, bob, "", 0, map[string]any{"lists": map[string]any{"dm": list(map[string]any{"is_dm": true})}})
	if bobView.Lists["dm"].Count != 1 || bobView.Rooms[dm] == nil || bobView.Rooms[dm].Membership != "invite" {
		t.Errorf("bob's DM invite: %+v", bobView)
	}
	// Heroes for the unnamed DM: bob (invited).
	if h := res.Rooms[dm].Heroes; len(h) != 1 || h[0]["user_id"] != string(bob.UserID) {
		t.Errorf("heroes: %+v", h)
	}
}

// TestSlidingSyncErrors checks the error answers, including an expired pos.
func TestSlidingSyncErrors(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.Sync.SlidingSyncConnectionTTL = time.Second })
	alice := srv.Register(t, "alice")
	cases := []struct {
		name   string
		path   string
		body   any
		status int
		code   string
	}{
		{"not json", ssPath, "{", 400, "M_NOT_JSON"},
		{"not an object", ssPath, "[]", 400, "M_BAD_JSON"},
		{"bad range", ssPath, map[string]any{"lists": map[string]any{"a": map[string]any{"ranges": [][]int{{5, 1}}}}}, 400, "M_INVALID_PARAM"},
		{"bad required_state", ssPath, map[string]any{"lists": map[string]any{"a": map[string]any{"required_state": [][]string{{"x"}}}}}, 400, "M_BAD_JSON"},
		{"negative timeline", ssPath, map[string]any{"room_subscriptions": map[string]any{"!a:b": map[string]any{"timeline_limit": -1}}}, 400, "M_INVALID_PARAM"},
		{"bad timeout", ssPath + "?timeout=abc", map[string]any{}, 400, "M_INVALID_PARAM"},
		{"bad presence", ssPath, map[string]any{"set_presence": "away"}, 400, "M_INVALID_PARAM"},
		{"unknown pos", ssPath + "?pos=nope_3", map[string]any{}, 400, "M_UNKNOWN_POS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, alice.Do(t, http.MethodPost, tc.path, tc.body), tc.status, tc.code)
		})
	}
	if res := srv.Anon().Do(t, http.MethodPost, ssPath, map[string]any{}); res.Status != 401 {
		t.Fatalf("no token: %d", res.Status)
	}
	first := slide(t, alice, "", 0, map[string]any{"conn_id": "a"})
	// Another connection's pos is not valid on this one.
	wantErr(t, alice.Do(t, http.MethodPost, ssPath+"?pos="+first.Pos, map[string]any{"conn_id": "b"}), 400, "M_UNKNOWN_POS")
	// A second device of the same user does not share connections.
	other := login(t, alice)
	wantErr(t, other.Do(t, http.MethodPost, ssPath+"?pos="+first.Pos, map[string]any{"conn_id": "a"}), 400, "M_UNKNOWN_POS")
	second := slide(t, alice, first.Pos, 0, map[string]any{"conn_id": "a"})
	// A pos from before a restart is unknown (connections live in memory).
	cfg := srv.Cfg
	srv.Close()
	srv = testserver.Start(t, cfg)
	alice.S = srv
	wantErr(t, alice.Do(t, http.MethodPost, ssPath+"?pos="+second.Pos, map[string]any{"conn_id": "a"}), 400, "M_UNKNOWN_POS")
	second = slide(t, alice, "", 0, map[string]any{"conn_id": "a"})
	// An idle connection expires after sync.sliding_sync_connection_ttl (1s here).
	time.Sleep(1500 * time.Millisecond)
	wantErr(t, alice.Do(t, http.MethodPost, ssPath+"?pos="+second.Pos, map[string]any{"conn_id": "a"}), 400, "M_UNKNOWN_POS")
	// Restarting the connection works.
	slide(t, alice, "", 0, map[string]any{"conn_id": "a"})
}

// TestVersionsAdvertisesSlidingSync checks the /versions flag.
func TestVersionsAdvertisesSlidingSync(t *testing.T) {
	srv := testserver.New(t)
	res := srv.Anon().MustDo(t, http.MethodGet, "/_matrix/client/versions", nil)
	if f, _ := res.JSON["unstable_features"].(map[string]any); f["org.matrix.simplified_msc3575"] != true {
		t.Fatalf("unstable_features: %v", res.JSON["unstable_features"])
	}
}

// TestSlidingSyncConfigChange: a larger room config sends the room again in
// full; going back to the smaller one does not.
func TestSlidingSyncConfigChange(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	room := createRoom(t, alice, map[string]any{"name": "r"})
	for _, m := range []string{"a", "b", "c"} {
		send(t, alice, room, m)
	}
	list := map[string]any{"all": map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 1, "required_state": [][]string{{"m.room.name", ""}}}}
	first := slide(t, alice, "", 0, map[string]any{"lists": list})
	if got := bodies(first.Rooms[room].Timeline); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("first: %v", got)
	}
	// A longer timeline alone: the latest events again, flagged, not initial.
	longer := map[string]any{"all": map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 2, "required_state": [][]string{{"m.room.name", ""}}}}
	exp := slide(t, alice, first.Pos, 0, map[string]any{"lists": longer})
	if r := exp.Rooms[room]; r == nil || r.Initial || !r.ExpandedTimeline || !slices.Equal(bodies(r.Timeline), []string{"b", "c"}) {
		t.Fatalf("expanded timeline: %+v", r)
	}
	// Opening the room: a subscription with a longer timeline and all state.
	sub := map[string]any{room: map[string]any{"timeline_limit": 3, "required_state": [][]string{{"*", "*"}}}}
	open := slide(t, alice, exp.Pos, 0, map[string]any{"lists": list, "room_subscriptions": sub})
	r := open.Rooms[room]
	if r == nil || !r.Initial || !slices.Equal(bodies(r.Timeline), []string{"a", "b", "c"}) || len(stateKeys(r.RequiredState, "m.room.power_levels")) != 1 {
		t.Fatalf("expanded config not sent in full: %+v", r)
	}
	if !slices.Equal(r.Lists, []string{"all"}) {
		t.Fatalf("lists: %v", r.Lists)
	}
	// Closing it again, then a message: only the new event.
	send(t, alice, room, "d")
	closed := slide(t, alice, open.Pos, 0, map[string]any{"lists": list, "unsubscribe_rooms": []string{room}})
	r = closed.Rooms[room]
	if r == nil || r.Initial || !slices.Equal(bodies(r.Timeline), []string{"d"}) {
		t.Fatalf("smaller config resent the room: %+v", r)
	}
}

// TestSlidingSyncKickAndLeave: a kicked user keeps the room in the list
// (membership leave, timeline up to the kick); a room left by the user
// appears only if the connection had it; a ban without a join never does.
func TestSlidingSyncKickAndLeave(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	kickRoom := createRoom(t, bob, map[string]any{"preset": "public_chat", "name": "kick"})
	leaveRoom := createRoom(t, bob, map[string]any{"preset": "public_chat", "name": "leave"})
	for _, r := range []string{kickRoom, leaveRoom} {
		alice.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", r), map[string]any{})
	}
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/invite", kickRoom), map[string]any{"user_id": carol.UserID})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/ban", kickRoom), map[string]any{"user_id": carol.UserID})
	body := map[string]any{"lists": map[string]any{"all": map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 5, "required_state": [][]string{}}}}
	first := slide(t, alice, "", 0, body)
	if first.Lists["all"].Count != 2 {
		t.Fatalf("count: %+v", first.Lists)
	}
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/kick", kickRoom), map[string]any{"user_id": alice.UserID})
	alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/leave", leaveRoom), map[string]any{})
	send(t, bob, kickRoom, "after the kick")
	after := slide(t, alice, first.Pos, 0, body)
	k := after.Rooms[kickRoom]
	if k == nil || k.Membership != "leave" || slices.Contains(bodies(k.Timeline), "after the kick") {
		t.Fatalf("kicked room: %+v", k)
	}
	if l := after.Rooms[leaveRoom]; l == nil || l.Membership != "leave" {
		t.Fatalf("room left on this connection: %+v", l)
	}
	// A new connection shows the kick but not the room alice left herself.
	fresh := slide(t, alice, "", 0, body)
	if got := roomIDs(fresh); !slices.Equal(got, []string{kickRoom}) || fresh.Lists["all"].Count != 1 {
		t.Fatalf("new connection: %v %+v", got, fresh.Lists)
	}
	if c := slide(t, carol, "", 0, body); c.Lists["all"].Count != 0 {
		t.Fatalf("ban without a join listed: %v", roomIDs(c))
	}
}

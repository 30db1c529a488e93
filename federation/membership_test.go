package federation_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
)

// invitedTo reports whether c's /sync lists roomID under rooms.invite.
func invitedTo(t *testing.T, c *testserver.Client, roomID id.RoomID) bool {
	t.Helper()
	res := c.MustDo(t, http.MethodGet, "sync", nil)
	rooms, _ := res.JSON["rooms"].(map[string]any)
	inv, _ := rooms["invite"].(map[string]any)
	_, ok := inv[string(roomID)]
	return ok
}

func TestInvitesBothWaysAndLeave(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")

	// hs1 -> hs2: alice invites bob into a private room; bob joins through the inviter's server.
	room1 := createRoom(t, alice, map[string]any{"preset": "private_chat", "name": "On hs1"})
	alice.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(room1))+"/invite", map[string]any{"user_id": bob.UserID})
	if m := membership(t, alice, room1, bob.UserID); m != "invite" {
		t.Fatalf("hs1 invite state: %q", m)
	}
	if !invitedTo(t, bob, room1) {
		t.Fatal("bob's /sync on hs2 does not show the invite")
	}
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(room1)), map[string]any{})
	eventually(t, "bob joined on hs1", func() bool { return membership(t, alice, room1, bob.UserID) == "join" })
	// The joined servers (cached per room, dropped on membership changes) now include hs2.
	if servers, err := hs1.HS.Rooms.JoinedServers(context.Background(), room1); err != nil || !slices.Contains(servers, "hs2.test") {
		t.Fatalf("joined servers after bob's join: %v %v", servers, err)
	}

	// hs2 -> hs1: bob invites alice into a room on hs2.
	room2 := createRoom(t, bob, map[string]any{"preset": "private_chat", "name": "On hs2"})
	bob.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(room2))+"/invite", map[string]any{"user_id": alice.UserID})
	if !invitedTo(t, alice, room2) {
		t.Fatal("alice's /sync on hs1 does not show the invite")
	}
	alice.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(room2)), map[string]any{})
	eventually(t, "alice joined on hs2", func() bool { return membership(t, bob, room2, alice.UserID) == "join" })
	send(t, alice, room2, "alice on hs2's room")
	eventually(t, "alice's message on hs2", func() bool { return hasBody(timelineBodies(t, bob, room2), "alice on hs2's room") })

	// Inviting a user who does not exist fails without changing the room.
	res := alice.Do(t, http.MethodPost, "rooms/"+url.PathEscape(string(room1))+"/invite", map[string]any{"user_id": "@nobody:hs2.test"})
	if res.Status == 200 || membership(t, alice, room1, "@nobody:hs2.test") != "" {
		t.Fatalf("invite of unknown remote user: %d %s", res.Status, res.Body)
	}

	// Leave: bob leaves room1; hs1 sees it, and hs2 no longer receives the room's events.
	bob.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(room1))+"/leave", map[string]any{})
	eventually(t, "bob's leave on hs1", func() bool { return membership(t, alice, room1, bob.UserID) == "leave" })
	if servers, err := hs1.HS.Rooms.JoinedServers(context.Background(), room1); err != nil || slices.Contains(servers, "hs2.test") {
		t.Fatalf("joined servers after bob's leave: %v %v", servers, err)
	}
	after := send(t, alice, room1, "after bob left")
	send(t, alice, room2, "marker")
	eventually(t, "marker on hs2", func() bool { return hasBody(timelineBodies(t, bob, room2), "marker") })
	time.Sleep(200 * time.Millisecond)
	if _, err := hs2.HS.Store.GetEvent(context.Background(), after); err == nil {
		t.Fatal("hs2 received an event of a room it left")
	}
}

func TestMakeJoinErrors(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	room := createRoom(t, alice, map[string]any{"preset": "private_chat"})
	c := fedClient(t, hs2)
	ctx := context.Background()
	// A private room refuses an uninvited join.
	if _, err := c.MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: room, UserID: "@bob:hs2.test", Via: "hs1.test", SupportedVersions: []id.RoomVersion{"11"}}); !isErr(err, 403, "M_FORBIDDEN") {
		t.Fatalf("uninvited make_join: %v", err)
	}
	// A user of another server than the requester's.
	if _, err := c.MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: room, UserID: "@carol:hs3.test", Via: "hs1.test", SupportedVersions: []id.RoomVersion{"11"}}); !isErr(err, 403, "M_FORBIDDEN") {
		t.Fatalf("foreign user make_join: %v", err)
	}
	// Unsupported room version.
	pub := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	if _, err := c.MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: pub, UserID: "@bob:hs2.test", Via: "hs1.test", SupportedVersions: []id.RoomVersion{"9"}}); !isErr(err, 400, "M_INCOMPATIBLE_ROOM_VERSION") {
		t.Fatalf("incompatible make_join: %v", err)
	}
	// ver lists every version the joining server supports: room version 1 is not implied.
	v1 := createRoom(t, alice, map[string]any{"preset": "public_chat", "room_version": "1"})
	if _, err := c.MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: v1, UserID: "@bob:hs2.test", Via: "hs1.test", SupportedVersions: []id.RoomVersion{"2"}}); !isErr(err, 400, "M_INCOMPATIBLE_ROOM_VERSION") {
		t.Fatalf("v1 room, ver=2: %v", err)
	}
	if resp, err := c.MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: v1, UserID: "@bob:hs2.test", Via: "hs1.test"}); err != nil || resp.RoomVersion != "1" {
		t.Fatalf("v1 room, no ver: %v %+v", err, resp)
	}
	// The joining server's client sees the resident server's refusal as it was.
	bob := hs2.Register(t, "bob")
	res := bob.Do(t, http.MethodPost, "join/"+url.PathEscape(string(room))+"?server_name=hs1.test", map[string]any{})
	if res.Status != 403 || res.JSON["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("client join refused by the remote: %d %s", res.Status, res.Body)
	}
	// Once every local user has left, hs1 is no longer resident.
	alice.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(pub))+"/leave", map[string]any{})
	if _, err := c.MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: pub, UserID: "@bob:hs2.test", Via: "hs1.test", SupportedVersions: []id.RoomVersion{"11"}}); !isErr(err, 404, "M_NOT_FOUND") {
		t.Fatalf("make_join after everyone left: %v", err)
	}
	// Unknown room.
	if _, err := c.MakeJoin(ctx, &federation.ReqMakeJoin{RoomID: "!nope:hs1.test", UserID: "@bob:hs2.test", Via: "hs1.test", SupportedVersions: []id.RoomVersion{"11"}}); !isErr(err, 404, "M_NOT_FOUND") {
		t.Fatalf("unknown room make_join: %v", err)
	}
}

func TestRejectRemoteInviteAndKnock(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")

	room := createRoom(t, alice, map[string]any{"preset": "private_chat"})
	alice.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(room))+"/invite", map[string]any{"user_id": bob.UserID})
	if !invitedTo(t, bob, room) {
		t.Fatal("invite missing on hs2")
	}
	// Rejecting goes through make_leave/send_leave on hs1 (hs2 has no state of the room).
	bob.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(room))+"/leave", map[string]any{})
	if m := membership(t, alice, room, bob.UserID); m != "leave" {
		t.Fatalf("hs1 membership after rejection: %q", m)
	}
	if invitedTo(t, bob, room) {
		t.Fatal("rejected invite still in bob's /sync")
	}

	knockRoom := createRoom(t, alice, map[string]any{"preset": "private_chat",
		"initial_state": []any{map[string]any{"type": "m.room.join_rules", "state_key": "", "content": map[string]any{"join_rule": "knock"}}}})
	bob.MustDo(t, http.MethodPost, "knock/"+url.PathEscape(string(knockRoom))+"?server_name=hs1.test", map[string]any{"reason": "let me in"})
	if m := membership(t, alice, knockRoom, bob.UserID); m != "knock" {
		t.Fatalf("hs1 membership after knock: %q", m)
	}
	res := bob.MustDo(t, http.MethodGet, "sync", nil)
	if knock, _ := res.JSON["rooms"].(map[string]any)["knock"].(map[string]any); knock[string(knockRoom)] == nil {
		t.Fatalf("knock missing from bob's /sync: %s", res.Body)
	}
	// Knocking on a room that does not allow it is refused by the resident server.
	if r := bob.Do(t, http.MethodPost, "knock/"+url.PathEscape(string(room))+"?server_name=hs1.test", map[string]any{}); r.Status == 200 {
		t.Fatalf("knock on a non-knock room: %d %s", r.Status, r.Body)
	}
}

// An invite can be rejected after everyone left the room (the resident
// server still serves make_leave), and when no server of the room can be
// reached (the rejection is then recorded locally only).
func TestRejectInviteEmptyRoomOrUnreachable(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")

	empty := createRoom(t, alice, map[string]any{"preset": "private_chat"})
	alice.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(empty))+"/invite", map[string]any{"user_id": bob.UserID})
	eventually(t, "invite on hs2", func() bool { return invitedTo(t, bob, empty) })
	alice.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(empty))+"/leave", map[string]any{})
	bob.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(empty))+"/leave", map[string]any{})
	if invitedTo(t, bob, empty) {
		t.Fatal("invite to an empty room still in bob's /sync")
	}
	if ev, err := hs1.HS.Store.CurrentStateEvent(context.Background(), empty, "m.room.member", string(bob.UserID)); err != nil || ev.Membership != "leave" {
		t.Fatalf("hs1 did not get the rejection: %+v %v", ev, err)
	}

	gone := createRoom(t, alice, map[string]any{"preset": "private_chat"})
	alice.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(gone))+"/invite", map[string]any{"user_id": bob.UserID})
	eventually(t, "second invite on hs2", func() bool { return invitedTo(t, bob, gone) })
	since := bob.MustDo(t, http.MethodGet, "sync", nil).JSON["next_batch"].(string)
	hs1.StopFederation()
	bob.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(gone))+"/leave", map[string]any{})
	if invitedTo(t, bob, gone) {
		t.Fatal("invite rejected while its server is unreachable still in bob's /sync")
	}
	// The rejection (an outlier, like the invite) is the timeline of the
	// room's rooms.leave entry.
	res := bob.MustDo(t, http.MethodGet, "sync?since="+url.QueryEscape(since), nil)
	left, _ := res.JSON["rooms"].(map[string]any)["leave"].(map[string]any)[string(gone)].(map[string]any)
	if left == nil {
		t.Fatalf("rejected invite not in rooms.leave: %s", res.Body)
	}
	evs, _ := left["timeline"].(map[string]any)["events"].([]any)
	if len(evs) != 1 {
		t.Fatalf("rooms.leave timeline: %s", res.Body)
	}
	if ev := evs[0].(map[string]any); ev["type"] != "m.room.member" || ev["state_key"] != string(bob.UserID) || ev["sender"] != string(bob.UserID) ||
		ev["content"].(map[string]any)["membership"] != "leave" {
		t.Fatalf("rooms.leave timeline event: %v", ev)
	}
}

// The invitee's server shows the stripped state the inviting server sent
// (invite_room_state) in the invite's invite_state.
func TestRemoteInviteShowsRoomState(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "private_chat", "name": "Secret plans", "topic": "plans"})
	alice.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(room))+"/invite", map[string]any{"user_id": bob.UserID})
	eventually(t, "invite on hs2", func() bool { return invitedTo(t, bob, room) })
	res := bob.MustDo(t, http.MethodGet, "sync", nil)
	inv := res.JSON["rooms"].(map[string]any)["invite"].(map[string]any)[string(room)].(map[string]any)
	types := map[string]any{}
	for _, e := range inv["invite_state"].(map[string]any)["events"].([]any) {
		ev := e.(map[string]any)
		types[ev["type"].(string)] = ev["content"]
	}
	for _, want := range []string{"m.room.create", "m.room.join_rules", "m.room.name", "m.room.topic", "m.room.member"} {
		if types[want] == nil {
			t.Fatalf("invite_state lacks %s: %v", want, types)
		}
	}
	if types["m.room.name"].(map[string]any)["name"] != "Secret plans" {
		t.Fatalf("room name in invite_state: %v", types["m.room.name"])
	}
}

// TestCreateRoomInvitesRemoteUser: createRoom's invite list with a user of
// another server (how clients start a DM) sends that server the invite, which
// it countersigns; a user who does not exist does not undo the room.
func TestCreateRoomInvitesRemoteUser(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	carol := hs1.Register(t, "carol")
	room := createRoom(t, alice, map[string]any{
		"preset": "trusted_private_chat", "is_direct": true,
		"invite": []any{bob.UserID, carol.UserID, "@nobody:hs2.test"},
	})
	if m := membership(t, alice, room, bob.UserID); m != "invite" {
		t.Fatalf("bob's membership on hs1: %q", m)
	}
	if m := membership(t, alice, room, carol.UserID); m != "invite" {
		t.Fatalf("carol's membership: %q", m)
	}
	if m := membership(t, alice, room, "@nobody:hs2.test"); m != "" {
		t.Fatalf("an unknown remote user was invited: %q", m)
	}
	res := bob.MustDo(t, http.MethodGet, "sync", nil)
	inv, _ := res.JSON["rooms"].(map[string]any)["invite"].(map[string]any)[string(room)].(map[string]any)
	if inv == nil {
		t.Fatalf("bob's /sync on hs2 lacks the invite: %s", res.Body)
	}
	direct := false
	for _, e := range inv["invite_state"].(map[string]any)["events"].([]any) {
		ev := e.(map[string]any)
		if ev["type"] == "m.room.member" && ev["state_key"] == string(bob.UserID) {
			direct, _ = ev["content"].(map[string]any)["is_direct"].(bool)
		}
	}
	if !direct {
		t.Fatalf("bob's invite is not marked is_direct: %s", res.Body)
	}
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(room)), map[string]any{})
	eventually(t, "bob joined on hs1", func() bool { return membership(t, alice, room, bob.UserID) == "join" })
}

// TestRemoteJoinNotResent: a join made through send_join reached the
// resident server already (which relays it to the room's other servers), so
// the joining server does not send it again in a transaction; the joiner's
// next message is the first PDU the resident server receives from it.
func TestRemoteJoinNotResent(t *testing.T) {
	f := joinedPair(t)
	var mu sync.Mutex
	var got []string // event types of the PDUs hs2 receives in transactions
	watchHS2Transactions(t, f, func(txn sentTxn) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range txn.PDUs {
			got = append(got, p.Type)
		}
	})
	room := createRoom(t, f.bob, map[string]any{"preset": "public_chat"})
	carol := f.hs1.Register(t, "carol")
	carol.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(room))+"?server_name=hs2.test", map[string]any{})
	send(t, carol, room, "hello from hs1")
	eventually(t, "carol's message on hs2", func() bool { return hasBody(timelineBodies(t, f.bob, room), "hello from hs1") })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []string{"m.room.message"}) {
		t.Fatalf("PDUs hs2 received in transactions: %v, want only the message", got)
	}
}

// TestRescindedRemoteInvite: the inviter kicks an invitee of another
// server that is not in the room; that server takes the leave (signed by
// the inviter's server) as it took the invite, and the invitee's /sync
// moves the room from rooms.invite to rooms.leave.
func TestRescindedRemoteInvite(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "private_chat", "invite": []any{bob.UserID}})
	eventually(t, "invite on hs2", func() bool { return invitedTo(t, bob, room) })
	since := bob.MustDo(t, http.MethodGet, "sync", nil).JSON["next_batch"].(string)
	alice.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(room))+"/kick", map[string]any{"user_id": bob.UserID, "reason": "wrong person"})
	eventually(t, "rescinded invite on hs2", func() bool { return !invitedTo(t, bob, room) })
	res := bob.MustDo(t, http.MethodGet, "sync?since="+url.QueryEscape(since), nil)
	left, _ := res.JSON["rooms"].(map[string]any)["leave"].(map[string]any)[string(room)].(map[string]any)
	evs, _ := left["timeline"].(map[string]any)["events"].([]any)
	if len(evs) != 1 || evs[0].(map[string]any)["sender"] != string(alice.UserID) {
		t.Fatalf("rescinded invite in rooms.leave: %s", res.Body)
	}

	// Someone else than the inviter kicking the invitee: hs2, without the
	// room's state, cannot tell whether they may, and keeps the invite.
	carol := hs1.Register(t, "carol")
	room2 := createRoom(t, alice, map[string]any{"preset": "private_chat", "invite": []any{carol.UserID},
		"power_level_content_override": map[string]any{"users": map[string]any{string(alice.UserID): 100, string(carol.UserID): 100}}})
	carol.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(room2)), map[string]any{})
	carol.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(room2))+"/invite", map[string]any{"user_id": bob.UserID})
	eventually(t, "carol's invite on hs2", func() bool { return invitedTo(t, bob, room2) })
	shared := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(shared))+"?server_name=hs1.test", map[string]any{})
	alice.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(room2))+"/kick", map[string]any{"user_id": bob.UserID})
	// A message queued for hs2 after the kick: once it is there, so is the kick.
	send(t, alice, shared, "after the kick")
	eventually(t, "the message after the kick on hs2", func() bool { return hasBody(timelineBodies(t, bob, shared), "after the kick") })
	if !invitedTo(t, bob, room2) {
		t.Fatal("a kick by someone else than the inviter rescinded the invite on hs2")
	}
}

package federation_test

import (
	"context"
	"encoding/json/v2"
	"net/http"
	"net/url"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// timelineBodies returns the message bodies of a room's timeline in a fresh /sync.
func timelineBodies(t *testing.T, c *testserver.Client, roomID id.RoomID) []string {
	t.Helper()
	res := c.MustDo(t, http.MethodGet, `sync?filter={"room":{"timeline":{"limit":50}}}`, nil)
	rooms, _ := res.JSON["rooms"].(map[string]any)
	join, _ := rooms["join"].(map[string]any)
	room, _ := join[string(roomID)].(map[string]any)
	tl, _ := room["timeline"].(map[string]any)
	evs, _ := tl["events"].([]any)
	var out []string
	for _, e := range evs {
		ev := e.(map[string]any)
		if ev["type"] == "m.room.message" {
			body, _ := ev["content"].(map[string]any)["body"].(string)
			out = append(out, body)
		}
	}
	return out
}

func hasBody(list []string, body string) bool {
	for _, b := range list {
		if b == body {
			return true
		}
	}
	return false
}

func send(t *testing.T, c *testserver.Client, roomID id.RoomID, body string) id.EventID {
	t.Helper()
	res := c.MustDo(t, http.MethodPut, "rooms/"+url.PathEscape(string(roomID))+"/send/m.room.message/"+url.PathEscape(body),
		map[string]any{"msgtype": "m.text", "body": body})
	return id.EventID(res.JSON["event_id"].(string))
}

func createRoom(t *testing.T, c *testserver.Client, body map[string]any) id.RoomID {
	t.Helper()
	res := c.MustDo(t, http.MethodPost, "createRoom", body)
	return id.RoomID(res.JSON["room_id"].(string))
}

func membership(t *testing.T, c *testserver.Client, roomID id.RoomID, user id.UserID) string {
	t.Helper()
	res := c.Do(t, http.MethodGet, "rooms/"+url.PathEscape(string(roomID))+"/state/m.room.member/"+url.PathEscape(string(user)), nil)
	if res.Status != 200 {
		return ""
	}
	m, _ := res.JSON["membership"].(string)
	return m
}

func TestRemoteJoinAndMessagesBothWays(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	roomID := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Federated"})
	send(t, alice, roomID, "before the join")

	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(roomID))+"?server_name=hs1.test", map[string]any{})
	if m := membership(t, bob, roomID, bob.UserID); m != "join" {
		t.Fatalf("bob's membership on hs2: %q", m)
	}
	eventually(t, "hs1 sees bob's join", func() bool { return membership(t, alice, roomID, bob.UserID) == "join" })
	if m := membership(t, bob, roomID, alice.UserID); m != "join" {
		t.Fatalf("hs2 state lacks alice: %q", m)
	}
	// hs2 has the room's state: its name.
	res := bob.MustDo(t, http.MethodGet, "rooms/"+url.PathEscape(string(roomID))+"/state/m.room.name/", nil)
	if res.JSON["name"] != "Federated" {
		t.Fatalf("room name on hs2: %s", res.Body)
	}

	send(t, alice, roomID, "hello from hs1")
	eventually(t, "hs1 message in hs2 /sync", func() bool { return hasBody(timelineBodies(t, bob, roomID), "hello from hs1") })
	bobEv := send(t, bob, roomID, "hello from hs2")
	eventually(t, "hs2 message in hs1 /sync", func() bool { return hasBody(timelineBodies(t, alice, roomID), "hello from hs2") })

	// The event hs2 built verifies with mautrix's checks as hs1 stored it.
	stored, err := hs1.HS.Store.GetEvent(context.Background(), bobEv)
	if err != nil {
		t.Fatal(err)
	}
	var p pdu.PDU
	if err := json.Unmarshal(stored.JSON, &p); err != nil {
		t.Fatal(err)
	}
	if !p.VerifyContentHash() {
		t.Fatal("content hash of hs2's event does not verify")
	}
	if err := p.VerifySignature("11", "hs2.test", hs1.HS.Keys.GetKey); err != nil {
		t.Fatalf("signature of hs2's event: %v", err)
	}
	if evID, _ := p.GetEventID("11"); evID != bobEv {
		t.Fatalf("event id %s != %s", evID, bobEv)
	}
}

// A server whose users all left a room has a stale copy of it; a user
// rejoining goes through a server still in the room and gets its current state.
func TestRejoinAfterLeaveGetsCurrentState(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	roomID := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Before"})
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(roomID))+"?server_name=hs1.test", map[string]any{})
	eventually(t, "bob joined on hs1", func() bool { return membership(t, alice, roomID, bob.UserID) == "join" })
	bob.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(roomID))+"/leave", map[string]any{})
	eventually(t, "bob left on hs1", func() bool { return membership(t, alice, roomID, bob.UserID) == "leave" })
	// hs2 is not told about this: none of its users is in the room.
	alice.MustDo(t, http.MethodPut, "rooms/"+url.PathEscape(string(roomID))+"/state/m.room.name/", map[string]any{"name": "After"})

	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(roomID)), map[string]any{})
	res := bob.MustDo(t, http.MethodGet, "rooms/"+url.PathEscape(string(roomID))+"/state/m.room.name/", nil)
	if res.JSON["name"] != "After" {
		t.Fatalf("room name on hs2 after rejoining: %s", res.Body)
	}
	eventually(t, "bob rejoined on hs1", func() bool { return membership(t, alice, roomID, bob.UserID) == "join" })
	send(t, alice, roomID, "welcome back")
	eventually(t, "hs1 message on hs2", func() bool { return hasBody(timelineBodies(t, bob, roomID), "welcome back") })
}

// A user whose server left a room (it keeps a stale copy) can be invited
// again, and joins on the room's current state.
func TestReinviteAfterServerLeft(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	roomID := createRoom(t, alice, map[string]any{"preset": "private_chat", "name": "Before"})
	alice.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(roomID))+"/invite", map[string]any{"user_id": bob.UserID})
	eventually(t, "first invite on hs2", func() bool { return invitedTo(t, bob, roomID) })
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(roomID)), map[string]any{})
	eventually(t, "bob joined on hs1", func() bool { return membership(t, alice, roomID, bob.UserID) == "join" })
	bob.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(roomID))+"/leave", map[string]any{})
	eventually(t, "bob left on hs1", func() bool { return membership(t, alice, roomID, bob.UserID) == "leave" })
	alice.MustDo(t, http.MethodPut, "rooms/"+url.PathEscape(string(roomID))+"/state/m.room.name/", map[string]any{"name": "After"})

	alice.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(roomID))+"/invite", map[string]any{"user_id": bob.UserID})
	eventually(t, "second invite on hs2", func() bool { return invitedTo(t, bob, roomID) })
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(roomID)), map[string]any{})
	eventually(t, "bob rejoined on hs1", func() bool { return membership(t, alice, roomID, bob.UserID) == "join" })
	res := bob.MustDo(t, http.MethodGet, "rooms/"+url.PathEscape(string(roomID))+"/state/m.room.name/", nil)
	if res.JSON["name"] != "After" {
		t.Fatalf("room name on hs2 after rejoining: %s", res.Body)
	}
}

package federation_test

import (
	"context"
	"encoding/json/v2"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// Room versions 1 and 2 over federation: event IDs chosen by the origin
// server, prev_events and auth_events as [ID, hashes] pairs.
func TestRoomV1AcrossServers(t *testing.T) {
	for _, version := range []id.RoomVersion{id.RoomV1, id.RoomV2} {
		t.Run(string(version), func(t *testing.T) {
			hs1, hs2 := pair(t)
			alice := hs1.Register(t, "alice")
			bob := hs2.Register(t, "bob")
			carol := hs2.Register(t, "carol")
			roomID := createRoom(t, alice, map[string]any{"preset": "public_chat", "room_version": version, "name": "Old"})
			send(t, alice, roomID, "before the join")

			bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(roomID))+"?server_name=hs1.test", map[string]any{})
			eventually(t, "hs1 sees bob's join", func() bool { return membership(t, alice, roomID, bob.UserID) == "join" })
			res := bob.MustDo(t, http.MethodGet, "rooms/"+url.PathEscape(string(roomID))+"/state/m.room.name/", nil)
			if res.JSON["name"] != "Old" {
				t.Fatalf("room name on hs2: %s", res.Body)
			}
			send(t, alice, roomID, "hello from hs1")
			eventually(t, "hs1 message on hs2", func() bool { return hasBody(timelineBodies(t, bob, roomID), "hello from hs1") })
			bobEv := send(t, bob, roomID, "hello from hs2")
			eventually(t, "hs2 message on hs1", func() bool { return hasBody(timelineBodies(t, alice, roomID), "hello from hs2") })

			// hs2 chose the event ID, and its event is a signed v1 PDU.
			if _, _, server := id.ParseCommonIdentifier(bobEv); server != "hs2.test" {
				t.Fatalf("event ID %s not chosen by hs2", bobEv)
			}
			stored, err := hs1.HS.Store.GetEvent(context.Background(), bobEv)
			if err != nil {
				t.Fatal(err)
			}
			var p pdu.RoomV1PDU
			if err := json.Unmarshal(stored.JSON, &p); err != nil {
				t.Fatalf("stored event is not a v1 PDU: %v\n%s", err, stored.JSON)
			}
			if p.EventID != bobEv || len(p.PrevEvents) == 0 || p.PrevEvents[0].Hashes.SHA256 == nil {
				t.Fatalf("v1 event shape: %s", stored.JSON)
			}
			if err := p.VerifySignature(version, "hs2.test", hs1.HS.Keys.GetKey); err != nil {
				t.Fatalf("signature of hs2's event: %v", err)
			}

			// Invite across servers: hs2 countersigns the v1 invite.
			alice.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(roomID))+"/invite", map[string]any{"user_id": carol.UserID})
			eventually(t, "carol's invite on hs2", func() bool { return invitedTo(t, carol, roomID) })
			carol.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(roomID)), map[string]any{})
			eventually(t, "carol joined on hs1", func() bool { return membership(t, alice, roomID, carol.UserID) == "join" })

			bob.MustDo(t, http.MethodPost, "rooms/"+url.PathEscape(string(roomID))+"/leave", map[string]any{})
			eventually(t, "bob's leave on hs1", func() bool { return membership(t, alice, roomID, bob.UserID) == "leave" })
		})
	}
}

package federation_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json/v2"
	"maps"
	"net/http"
	"net/url"
	"testing"
	"time"

	"maunium.net/go/mautrix/crypto/canonicaljson"
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

// A v1 event's signature is checked over the JSON as sent: here its
// prev_events reference carries an empty hashes object, which mautrix's
// parsed form would re-encode differently.
func TestRoomV1SignatureOverReceivedJSON(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	roomID := createRoom(t, alice, map[string]any{"preset": "public_chat", "room_version": "1"})
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(roomID))+"?server_name=hs1.test", map[string]any{})
	eventually(t, "hs1 sees bob's join", func() bool { return membership(t, alice, roomID, bob.UserID) == "join" })
	ctx := context.Background()
	ext, err := hs1.HS.Store.ForwardExtremities(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	var auth []any
	for _, k := range [][2]string{{"m.room.create", ""}, {"m.room.power_levels", ""}, {"m.room.member", string(bob.UserID)}} {
		ev, err := hs1.HS.Store.CurrentStateEvent(ctx, roomID, k[0], k[1])
		if err != nil {
			t.Fatal(err)
		}
		auth = append(auth, []any{ev.EventID, map[string]any{}})
	}
	evID := "$emptyhashes:hs2.test"
	ev := map[string]any{
		"event_id": evID, "room_id": roomID, "sender": bob.UserID, "type": "m.room.message", "origin": "hs2.test",
		"content": map[string]any{"msgtype": "m.text", "body": "empty hashes"}, "depth": 100, "origin_server_ts": time.Now().UnixMilli(),
		"prev_events": []any{[]any{ext[0], map[string]any{}}}, "auth_events": auth,
	}
	unhashed, err := canonicaljson.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(unhashed)
	ev["hashes"] = map[string]any{"sha256": base64.RawStdEncoding.EncodeToString(sum[:])}
	redacted := maps.Clone(ev)
	redacted["content"] = map[string]any{}
	sig, err := hs2.HS.SigningKey.SignJSON(redacted)
	if err != nil {
		t.Fatal(err)
	}
	ev["signatures"] = map[string]any{"hs2.test": map[string]any{string(hs2.HS.SigningKey.ID): sig}}
	b, _ := json.Marshal(map[string]any{"origin": "hs2.test", "origin_server_ts": time.Now().UnixMilli(), "pdus": []any{ev}})
	uri := "/_matrix/federation/v1/send/emptyhashes"
	status, body := rawFed(t, hs1, "PUT", uri, xMatrix(t, hs2.HS.SigningKey, "PUT", uri, "hs2.test", "hs1.test", b), b)
	if status != 200 {
		t.Fatalf("send: %d %v", status, body)
	}
	if res, _ := body["pdus"].(map[string]any)[evID].(map[string]any); len(res) != 0 {
		t.Fatalf("event refused: %v", body)
	}
	if stored, err := hs1.HS.Store.GetEvent(ctx, id.EventID(evID)); err != nil || stored.Rejected || stored.SoftFailed {
		t.Fatalf("event not accepted: %+v %v", stored, err)
	}
	eventually(t, "the event in alice's timeline", func() bool { return hasBody(timelineBodies(t, alice, roomID), "empty hashes") })
}

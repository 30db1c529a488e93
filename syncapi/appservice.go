package syncapi

import (
	"encoding/json"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// EphemeralSink receives the ephemeral events this server makes or receives
// (typing, public read receipts, presence), for application services that
// ask for them (MSC2409). ev is the event as an application service
// transaction carries it; room is set for m.typing and m.receipt, user for
// m.receipt and m.presence, and userRooms are the rooms a presence user is
// joined to. OnEphemeral must not block.
type EphemeralSink interface {
	OnEphemeral(ev json.RawMessage, room id.RoomID, user id.UserID, userRooms []id.RoomID)
}

// SetEphemeralSink connects the inbox to the application services; call it
// before serving. Without one, nothing is built for them.
func (in *Inbox) SetEphemeralSink(s EphemeralSink) { in.ephemeralSink = s }

// typingToAppServices passes room's typing users on after a change.
func (in *Inbox) typingToAppServices(room id.RoomID) {
	if in.ephemeralSink == nil {
		return
	}
	users, _ := in.typing.snapshot(room, true, 0, 0)
	if users == nil {
		users = []id.UserID{}
	}
	ev, _ := json.Marshal(map[string]any{"type": "m.typing", "room_id": room, "content": map[string]any{"user_ids": users}})
	in.ephemeralSink.OnEphemeral(ev, room, "", nil)
}

// receiptToAppServices passes a public read receipt on.
func (in *Inbox) receiptToAppServices(rc storage.Receipt) {
	if in.ephemeralSink == nil {
		return
	}
	users := map[id.UserID]map[string]any{}
	putReceipt(users, rc)
	ev, _ := json.Marshal(map[string]any{"type": "m.receipt", "room_id": rc.RoomID,
		"content": map[id.EventID]any{rc.EventID: map[string]any{rc.Type: users}}})
	in.ephemeralSink.OnEphemeral(ev, rc.RoomID, rc.UserID, nil)
}

// presenceToAppServices passes a user's new presence on.
func (p *presenceState) presenceToAppServices(user id.UserID, rooms []id.RoomID) {
	sink := p.in.ephemeralSink
	if sink == nil {
		return
	}
	c, _, ok := p.content(user, time.Now())
	if !ok {
		return
	}
	ev, _ := json.Marshal(map[string]any{"type": "m.presence", "sender": user, "content": c})
	sink.OnEphemeral(ev, "", user, rooms)
}

package syncapi

import (
	"context"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// EDUSink sends ephemeral events of local users to the other servers of a room.
type EDUSink interface {
	// SendRoomEDU queues an EDU for every other server with members in room.
	SendRoomEDU(room id.RoomID, eduType string, content any)
	// SendEDU queues an EDU for the given servers.
	SendEDU(dests []string, eduType string, content any)
}

// SetEDUSink connects the inbox to federation; call it before serving.
func (in *Inbox) SetEDUSink(s EDUSink) { in.eduSink = s }

func (in *Inbox) sendTypingEDU(room id.RoomID, user id.UserID, typing bool, timeout time.Duration) {
	if in.eduSink == nil || user.Homeserver() != in.cfg.ServerName {
		return
	}
	in.eduSink.SendRoomEDU(room, "m.typing", map[string]any{"room_id": room, "user_id": user, "typing": typing,
		"timeout": timeout.Milliseconds()})
}

func (in *Inbox) sendReceiptEDU(rc storage.Receipt) {
	if in.eduSink == nil || rc.Type != receiptRead || rc.UserID.Homeserver() != in.cfg.ServerName {
		return
	}
	data := map[string]any{"ts": rc.TS}
	if rc.ThreadID != "" {
		data["thread_id"] = rc.ThreadID
	}
	in.eduSink.SendRoomEDU(rc.RoomID, "m.receipt", map[id.RoomID]any{rc.RoomID: map[string]any{
		receiptRead: map[id.UserID]any{rc.UserID: map[string]any{"event_ids": []id.EventID{rc.EventID}, "data": data}},
	}})
}

// SetRemoteTyping records a remote user's typing notification (m.typing EDU).
// The user must be joined to the room.
func (in *Inbox) SetRemoteTyping(ctx context.Context, room id.RoomID, user id.UserID, typing bool, timeout time.Duration) error {
	joined, err := in.rooms.IsJoined(ctx, room, user)
	if err != nil || !joined {
		return err
	}
	if timeout <= 0 || timeout > maxTypingTimeout {
		timeout = defaultTypingTimeout
	}
	in.setTyping(room, user, typing, timeout)
	return nil
}

// SetRemoteReceipt records a remote user's public read receipt (m.receipt EDU).
func (in *Inbox) SetRemoteReceipt(ctx context.Context, room id.RoomID, user id.UserID, ev id.EventID, thread string) error {
	return in.setReceipt(ctx, user, room, receiptRead, ev, thread)
}

// SetRemotePresence records a remote user's presence (m.presence EDU).
func (in *Inbox) SetRemotePresence(ctx context.Context, user id.UserID, presence string, statusMsg *string, lastActiveAgo int64) error {
	switch presence {
	case presenceOnline, presenceUnavailable, presenceOffline:
	default:
		return fmt.Errorf("unknown presence %q", presence)
	}
	in.presence.setRemote(user, presence, statusMsg, lastActiveAgo)
	return nil
}

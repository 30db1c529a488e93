package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"maunium.net/go/mautrix/id"
)

// Ephemeral is where inbound typing notifications and receipts go (the sync API's inbox).
type Ephemeral interface {
	// SetRemoteTyping records a remote user's typing state in a room.
	SetRemoteTyping(ctx context.Context, room id.RoomID, user id.UserID, typing bool, timeout time.Duration) error
	// SetRemoteReceipt records a remote user's read receipt.
	SetRemoteReceipt(ctx context.Context, room id.RoomID, user id.UserID, ev id.EventID, thread string) error
	// SetRemotePresence records a remote user's presence.
	SetRemotePresence(ctx context.Context, user id.UserID, presence string, statusMsg *string, lastActiveAgo int64) error
}

// ToDevice receives to-device messages and device-list updates of remote users (the key server).
type ToDevice interface {
	ReceiveToDevice(ctx context.Context, origin string, sender id.UserID, evType, messageID string, messages map[id.UserID]map[string]json.RawMessage) error
	RemoteDeviceListUpdate(ctx context.Context, origin string, user id.UserID) error
}

// ACL applies rooms' server ACLs (m.room.server_acl) to origin servers.
type ACL interface {
	ServerAllowed(ctx context.Context, roomID id.RoomID, server string) (bool, error)
}

// EDUs handles the EDUs of inbound transactions: m.typing, m.receipt and m.presence go
// to the inbox, m.direct_to_device to the key server; other types are
// ignored. Users must belong to the origin server, and a room's typing and
// receipts are dropped when its server ACL denies the origin.
type EDUs struct {
	Sink     Ephemeral
	ToDevice ToDevice
	// ACL, when set, is checked for room EDUs (typing, receipts).
	ACL ACL
}

// allowed reports whether origin may send EDUs about room.
func (e *EDUs) allowed(ctx context.Context, room id.RoomID, origin string) (bool, error) {
	if e.ACL == nil {
		return true, nil
	}
	return e.ACL.ServerAllowed(ctx, room, origin)
}

var _ EDUHandler = (*EDUs)(nil)

// HandleEDU implements EDUHandler.
func (e *EDUs) HandleEDU(r *http.Request, origin, eduType string, content json.RawMessage) error {
	ctx := r.Context()
	switch eduType {
	case "m.typing":
		var c struct {
			RoomID  id.RoomID `json:"room_id"`
			UserID  id.UserID `json:"user_id"`
			Typing  bool      `json:"typing"`
			Timeout int64     `json:"timeout"`
		}
		if err := json.Unmarshal(content, &c); err != nil {
			return err
		}
		if c.UserID.Homeserver() != origin {
			return fmt.Errorf("typing user %s is not from %s", c.UserID, origin)
		}
		if ok, err := e.allowed(ctx, c.RoomID, origin); err != nil || !ok {
			return err
		}
		return e.Sink.SetRemoteTyping(ctx, c.RoomID, c.UserID, c.Typing, time.Duration(c.Timeout)*time.Millisecond)
	case "m.direct_to_device":
		var c struct {
			Sender    id.UserID                                `json:"sender"`
			Type      string                                   `json:"type"`
			MessageID string                                   `json:"message_id"`
			Messages  map[id.UserID]map[string]json.RawMessage `json:"messages"`
		}
		if err := json.Unmarshal(content, &c); err != nil {
			return err
		}
		if e.ToDevice == nil || c.Type == "" || c.MessageID == "" {
			return fmt.Errorf("to-device EDU without type or message_id")
		}
		return e.ToDevice.ReceiveToDevice(ctx, origin, c.Sender, c.Type, origin+"_"+c.MessageID, c.Messages)
	case "m.device_list_update", "m.signing_key_update":
		var c struct {
			UserID id.UserID `json:"user_id"`
		}
		if err := json.Unmarshal(content, &c); err != nil {
			return err
		}
		if e.ToDevice == nil {
			return nil
		}
		return e.ToDevice.RemoteDeviceListUpdate(ctx, origin, c.UserID)
	case "m.receipt":
		var c map[id.RoomID]map[string]map[id.UserID]struct {
			EventIDs []id.EventID `json:"event_ids"`
			Data     struct {
				ThreadID string `json:"thread_id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(content, &c); err != nil {
			return err
		}
		for room, types := range c {
			if ok, err := e.allowed(ctx, room, origin); err != nil {
				return err
			} else if !ok {
				continue
			}
			for user, rc := range types["m.read"] {
				if user.Homeserver() != origin || len(rc.EventIDs) == 0 {
					continue
				}
				if err := e.Sink.SetRemoteReceipt(ctx, room, user, rc.EventIDs[0], rc.Data.ThreadID); err != nil {
					return err
				}
			}
		}
	case "m.presence":
		var c struct {
			Push []struct {
				UserID        id.UserID `json:"user_id"`
				Presence      string    `json:"presence"`
				StatusMsg     *string   `json:"status_msg"`
				LastActiveAgo int64     `json:"last_active_ago"`
			} `json:"push"`
		}
		if err := json.Unmarshal(content, &c); err != nil {
			return err
		}
		for _, p := range c.Push {
			if p.UserID.Homeserver() != origin {
				continue
			}
			if err := e.Sink.SetRemotePresence(ctx, p.UserID, p.Presence, p.StatusMsg, p.LastActiveAgo); err != nil {
				return err
			}
		}
	}
	return nil
}

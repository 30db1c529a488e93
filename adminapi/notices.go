package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/roomserver"
	"parley/storage"
)

// sendServerNotice handles POST /_synapse/admin/v1/send_server_notice and
// PUT .../send_server_notice/{txnID}: a message from the system account in
// the user's server notices room (created, and the user invited, as needed).
func (a *API) sendServerNotice(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if a.cfg.ServerNotices.SystemLocalpart == "" {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "Server notices are not enabled on this server")
	}
	var req struct {
		UserID   id.UserID       `json:"user_id"`
		Content  json.RawMessage `json:"content"`
		Type     string          `json:"type"`
		StateKey *string         `json:"state_key"`
	}
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.UserID == "" || len(req.Content) == 0 {
		return httputil.MissingParam("user_id and content are required")
	}
	if len(req.Content) == 0 || req.Content[0] != '{' {
		return httputil.BadJSON("content must be an object")
	}
	if _, server, err := req.UserID.Parse(); err != nil || server != a.cfg.ServerName {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "Server notices can only be sent to local users")
	}
	ctx := r.Context()
	if acc, err := a.store.GetAccount(ctx, req.UserID); errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("User not found")
	} else if err != nil {
		return err
	} else if acc.Deactivated {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUserDeactivated, "User is deactivated")
	}
	if req.Type == "" {
		req.Type = "m.room.message"
	}
	system := id.NewUserID(a.cfg.ServerNotices.SystemLocalpart, a.cfg.ServerName)
	room, err := a.noticeRoom(ctx, system, req.UserID)
	if err != nil {
		return err
	}
	sr := roomserver.SendRequest{RoomID: room, Sender: system, Type: req.Type, StateKey: req.StateKey, Content: req.Content}
	if txn := httputil.PathVar(r, "txnID"); txn != "" {
		sr.TxnID, sr.DeviceID = txn, id.DeviceID("admin:"+string(dev.UserID))
	}
	evID, err := a.rooms.Send(ctx, sr)
	if err != nil {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "could not send notice: %v", err)
	}
	a.Audit(ctx, "server_notice", dev, string(req.UserID), map[string]any{"event_id": evID})
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"event_id": evID})
}

// noticeRoom returns the user's server notices room, creating it (and the
// system account) when the user has none; a user who left it is invited back.
func (a *API) noticeRoom(ctx context.Context, system, user id.UserID) (id.RoomID, error) {
	if _, err := a.store.GetAccount(ctx, system); errors.Is(err, storage.ErrNotFound) {
		if err := a.store.CreateAccount(ctx, storage.Account{UserID: system, CreatedTS: time.Now().UnixMilli()}); err != nil && !errors.Is(err, storage.ErrConflict) {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	room, err := a.store.ServerNoticeRoom(ctx, user)
	if err == nil {
		ms, err := a.store.RoomMemberships(ctx, room)
		if err != nil {
			return "", err
		}
		var mine, sys string
		for _, m := range ms {
			switch m.UserID {
			case user:
				mine = m.Membership
			case system:
				sys = m.Membership
			}
		}
		switch {
		case mine == "join" || mine == "invite":
			return room, nil
		case mine == "leave" && sys == "join":
			// As Synapse: a user who left is invited back into the same room.
			_, err := a.rooms.Invite(ctx, roomserver.MembershipRequest{RoomID: room, Sender: system, Target: user})
			if err == nil {
				return room, nil
			}
			a.log.Warn("server notices: re-invite failed, creating a new room", zap.Stringer("room_id", room), zap.Error(err))
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return "", err
	}
	name := a.cfg.ServerNotices.RoomName
	// Only the system account may post: events_default 100.
	room, _, err = a.rooms.CreateRoom(ctx, roomserver.CreateRoomRequest{
		Creator: system, Preset: "private_chat", Name: &name, Invite: []id.UserID{user},
		PowerLevelContentOverride: map[string]json.RawMessage{"events_default": json.RawMessage("100")},
	})
	if err != nil {
		return "", err
	}
	return room, a.store.SetServerNoticeRoom(ctx, user, room)
}

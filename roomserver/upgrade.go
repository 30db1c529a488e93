package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/logging"
	"parley/storage"
)

// upgradeCopiedState are the state events (empty state key) copied into the
// replacement room (client-server API, "Room upgrades", server behaviour).
var upgradeCopiedState = []string{
	event.StateJoinRules.Type, event.StateHistoryVisibility.Type, event.StateGuestAccess.Type,
	event.StateEncryption.Type, event.StateServerACL.Type, event.StateRoomAvatar.Type,
	event.StateRoomName.Type, event.StateTopic.Type,
}

// UpgradeRequest is POST /rooms/{roomId}/upgrade, decoded.
type UpgradeRequest struct {
	RoomID             id.RoomID
	User               id.UserID
	NewVersion         id.RoomVersion
	AdditionalCreators []id.UserID
}

// UpgradeRoom replaces a room with a new room of another version: the new room
// gets the old one's create type, copied state and power levels and a
// predecessor; local aliases move over; the old room gets an m.room.tombstone
// and power levels that stop ordinary members from talking or inviting. The
// user must be allowed to send m.room.tombstone in the old room.
func (s *Server) UpgradeRoom(ctx context.Context, req UpgradeRequest) (id.RoomID, error) {
	if !Supported(req.NewVersion) {
		return "", fmt.Errorf("%w: %q", ErrUnsupportedRoomVersion, req.NewVersion)
	}
	oldRoom, err := s.store.GetRoom(ctx, req.RoomID)
	if errors.Is(err, storage.ErrNotFound) {
		return "", fmt.Errorf("%w: you are not in the room", ErrForbidden)
	} else if err != nil {
		return "", err
	}
	ok, err := s.canSendState(ctx, req.RoomID, req.User, event.StateTombstone.Type)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("%w: you may not upgrade this room", ErrForbidden)
	}
	content := func(evType string) (json.RawMessage, bool) {
		ev, err := s.store.CurrentStateEvent(ctx, req.RoomID, evType, "")
		if err != nil {
			return nil, false
		}
		c := gjson.GetBytes(ev.JSON, "content")
		if !c.IsObject() {
			return nil, false
		}
		return json.RawMessage(c.Raw), true
	}

	create := CreateRoomRequest{Creator: req.User, RoomVersion: req.NewVersion, Preset: "private_chat",
		CreationContent: map[string]json.RawMessage{}}
	if oldRoom.IsPublic {
		create.Visibility = "public"
	}
	pred := map[string]any{"room_id": req.RoomID}
	if ext, err := s.store.ForwardExtremities(ctx, req.RoomID); err == nil && len(ext) > 0 {
		pred["event_id"] = ext[0]
	}
	create.CreationContent["predecessor"] = mustJSON(pred)
	if c, ok := content(event.StateCreate.Type); ok {
		for _, k := range []string{"type", "m.federate"} {
			if v := gjson.GetBytes(c, gjsonKey(k)); v.Exists() {
				create.CreationContent[k] = json.RawMessage(v.Raw)
			}
		}
	}
	if len(req.AdditionalCreators) > 0 && req.NewVersion.PrivilegedRoomCreators() {
		create.CreationContent["additional_creators"] = mustJSON(req.AdditionalCreators)
	}
	if jr, ok := content(event.StateJoinRules.Type); ok && gjson.GetBytes(jr, "join_rule").Str == "public" {
		create.Preset = "public_chat"
	}
	for _, t := range upgradeCopiedState {
		if c, ok := content(t); ok {
			create.InitialState = append(create.InitialState, InitialStateEvent{Type: t, Content: c})
		} else if t == event.StateGuestAccess.Type {
			// The private preset would allow guests; the old room did not.
			create.InitialState = append(create.InitialState, InitialStateEvent{Type: t, Content: mustJSON(map[string]any{"guest_access": "forbidden"})})
		}
	}
	var oldPL event.PowerLevelsEventContent
	plRaw, hasPL := content(event.StatePowerLevels.Type)
	if hasPL {
		_ = json.Unmarshal(plRaw, &oldPL)
		var pl map[string]json.RawMessage
		if json.Unmarshal(plRaw, &pl) == nil {
			users := map[string]any{}
			_ = json.Unmarshal(pl["users"], &users)
			if req.NewVersion.PrivilegedRoomCreators() {
				// Creators of the new room may not be listed in users.
				delete(users, string(req.User))
				for _, c := range req.AdditionalCreators {
					delete(users, string(c))
				}
			} else {
				users[string(req.User)] = max(s.userLevel(ctx, req.RoomID, req.User, &oldPL), 100)
			}
			pl["users"] = mustJSON(users)
			create.PowerLevelContentOverride = pl
		}
	}
	newRoomID, _, err := s.CreateRoom(ctx, create)
	if err != nil {
		return "", err
	}

	// Tombstone the old room, then keep ordinary members from talking in it.
	sk := ""
	tomb := mustJSON(map[string]any{"body": "This room has been replaced", "replacement_room": newRoomID})
	if _, err := s.Send(ctx, SendRequest{RoomID: req.RoomID, Sender: req.User, Type: event.StateTombstone.Type, StateKey: &sk, Content: tomb}); err != nil {
		return "", fmt.Errorf("tombstone: %w", err)
	}
	if hasPL {
		var pl map[string]json.RawMessage
		if json.Unmarshal(plRaw, &pl) == nil {
			restricted := max(50, oldPL.UsersDefault+1)
			if oldPL.EventsDefault < restricted || oldPL.Invite() < restricted {
				pl["events_default"], pl["invite"] = mustJSON(restricted), mustJSON(restricted)
				if _, err := s.Send(ctx, SendRequest{RoomID: req.RoomID, Sender: req.User, Type: event.StatePowerLevels.Type, StateKey: &sk, Content: mustJSON(pl)}); err != nil {
					s.log.Info("could not restrict the old room's power levels", logging.RoomID(req.RoomID), zap.Error(err))
				}
			}
		}
	}
	s.moveAliases(ctx, req, newRoomID, content)
	joinRule := "invite"
	if jr, ok := content(event.StateJoinRules.Type); ok {
		joinRule = gjson.GetBytes(jr, "join_rule").Str
	}
	s.transferMembers(ctx, req, newRoomID, joinRule)
	if !oldRoom.IsPublic {
		return newRoomID, nil
	}
	if err := s.store.SetRoomPublic(ctx, req.RoomID, false); err != nil {
		return "", err
	}
	return newRoomID, nil
}

// userLevel is user's power level in a room (creators of v12+ rooms count as 100 here).
func (s *Server) userLevel(ctx context.Context, roomID id.RoomID, user id.UserID, pl *event.PowerLevelsEventContent) int {
	if room, err := s.store.GetRoom(ctx, roomID); err == nil && room.Version.PrivilegedRoomCreators() {
		if ok, _ := s.canSendState(ctx, roomID, user, event.StateCreate.Type); ok && pl.GetUserLevel(user) < 100 {
			return 100
		}
	}
	return pl.GetUserLevel(user)
}

// moveAliases points the old room's local aliases at the new room and moves
// the canonical alias event's contents over.
func (s *Server) moveAliases(ctx context.Context, req UpgradeRequest, newRoomID id.RoomID, content func(string) (json.RawMessage, bool)) {
	aliases, err := s.store.RoomAliases(ctx, req.RoomID)
	if err != nil {
		s.log.Warn("listing aliases to move", logging.RoomID(req.RoomID), zap.Error(err))
		return
	}
	for _, a := range aliases {
		_, creator, err := s.store.ResolveAlias(ctx, a)
		if err != nil {
			continue
		}
		if err := s.store.DeleteAlias(ctx, a); err != nil {
			continue
		}
		if err := s.store.CreateAlias(ctx, a, newRoomID, creator); err != nil {
			s.log.Warn("moving alias", logging.RoomID(newRoomID), zap.Error(err))
		}
	}
	ca, ok := content(event.StateCanonicalAlias.Type)
	if !ok || (gjson.GetBytes(ca, "alias").Str == "" && len(gjson.GetBytes(ca, "alt_aliases").Array()) == 0) {
		return
	}
	sk := ""
	if _, err := s.Send(ctx, SendRequest{RoomID: newRoomID, Sender: req.User, Type: event.StateCanonicalAlias.Type, StateKey: &sk, Content: ca}); err != nil {
		s.log.Info("could not copy the canonical alias", logging.RoomID(newRoomID), zap.Error(err))
	}
	if _, err := s.Send(ctx, SendRequest{RoomID: req.RoomID, Sender: req.User, Type: event.StateCanonicalAlias.Type, StateKey: &sk, Content: json.RawMessage(`{}`)}); err != nil {
		s.log.Info("could not clear the old room's canonical alias", logging.RoomID(req.RoomID), zap.Error(err))
	}
}

// transferMembers bans the old room's banned users in the new room, re-sends
// pending invites, and, when the old room was invite-only (members could not
// join the replacement otherwise), invites its joined members.
func (s *Server) transferMembers(ctx context.Context, req UpgradeRequest, newRoomID id.RoomID, joinRule string) {
	members, err := s.store.RoomMemberships(ctx, req.RoomID)
	if err != nil {
		s.log.Warn("listing members to transfer", logging.RoomID(req.RoomID), zap.Error(err))
		return
	}
	for _, m := range members {
		if m.UserID == req.User {
			continue
		}
		mr := MembershipRequest{RoomID: newRoomID, Sender: req.User, Target: m.UserID}
		switch {
		case m.Membership == "ban":
			_, err = s.Ban(ctx, mr)
		case m.Membership == "invite" || (m.Membership == "join" && joinRule == "invite"):
			_, err = s.Invite(ctx, mr)
		default:
			continue
		}
		if err != nil {
			s.log.Info("could not transfer a membership to the upgraded room", logging.RoomID(newRoomID), zap.Error(err))
		}
	}
}

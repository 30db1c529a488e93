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
	_, err := s.store.GetRoom(ctx, req.RoomID)
	if errors.Is(err, storage.ErrNotFound) {
		return "", ErrRoomNotFound // 404, as Synapse answers (SyTest checks it)
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
	// The canonical alias moves with the aliases (which are repointed once
	// the upgrade is done); the creation does not check that they resolve.
	ca, hasCA := content(event.StateCanonicalAlias.Type)
	hasCA = hasCA && (gjson.GetBytes(ca, "alias").Str != "" || len(gjson.GetBytes(ca, "alt_aliases").Array()) > 0)
	if hasCA {
		create.InitialState = append(create.InitialState, InitialStateEvent{Type: event.StateCanonicalAlias.Type, Content: ca})
	}
	// The old room's power levels after the upgrade: ordinary members may no
	// longer talk or invite.
	var restrictedPL []byte
	if hasPL {
		var pl map[string]json.RawMessage
		if json.Unmarshal(plRaw, &pl) == nil {
			restricted := max(50, oldPL.UsersDefault+1)
			if oldPL.EventsDefault < restricted || oldPL.Invite() < restricted {
				pl["events_default"], pl["invite"] = mustJSON(restricted), mustJSON(restricted)
				restrictedPL = mustJSON(pl)
			}
		}
	}

	// The upgrade happens under the old room's write lock, in this order, so
	// that a failure at any step leaves the old room as it was: build and
	// authorise every event of the new room and the old room's tombstone
	// (nothing is stored yet), store the new room (one transaction), then
	// the tombstone and the power levels (one transaction). Only if that last
	// write fails does a new room exist without a tombstone pointing to it;
	// it is then abandoned (the user leaves it) and never published.
	var nw *working
	var newRoom *storage.Room
	newStored := false
	// Where the new room's ID is not derived from its create event, the
	// tombstone comes first and the new room's predecessor names it (as
	// Synapse does); otherwise the predecessor is the old room's last event.
	tombstoneFirst := !req.NewVersion.RoomIDIsCreateEventID()
	if req.NewVersion == "" {
		tombstoneFirst = !s.cfg.Rooms.DefaultVersion.RoomIDIsCreateEventID()
	}
	_, err = s.inRoom(ctx, req.RoomID, func(w *working) (id.EventID, error) {
		sk := ""
		tombstone := func(replacement id.RoomID) (id.EventID, error) {
			tomb := mustJSON(map[string]any{"body": "This room has been replaced", "replacement_room": replacement})
			ne, err := s.add(w, eventSpec{Sender: req.User, Type: event.StateTombstone.Type, StateKey: &sk, Content: tomb})
			if err != nil {
				return "", fmt.Errorf("tombstone: %w", err)
			}
			return ne.EventID, nil
		}
		build := func() (err error) {
			if nw, newRoom, _, err = s.buildRoom(ctx, create); err != nil {
				nw = nil
			}
			return err
		}
		if tombstoneFirst && !newStored {
			create.roomID = newRoomID(s.serverName)
			tombID, err := tombstone(create.roomID)
			if err != nil {
				return "", err
			}
			create.CreationContent["predecessor"] = mustJSON(map[string]any{"room_id": req.RoomID, "event_id": tombID})
			if err := build(); err != nil {
				return "", err
			}
		} else {
			if nw == nil {
				if err := build(); err != nil {
					return "", err
				}
			}
			if _, err := tombstone(nw.roomID); err != nil {
				return "", err
			}
		}
		if restrictedPL != nil {
			if _, err := s.add(w, eventSpec{Sender: req.User, Type: event.StatePowerLevels.Type, StateKey: &sk, Content: restrictedPL}); err != nil {
				s.log.Info("could not restrict the old room's power levels", logging.RoomID(req.RoomID), zap.Error(err))
			}
		}
		if hasCA {
			if _, err := s.add(w, eventSpec{Sender: req.User, Type: event.StateCanonicalAlias.Type, StateKey: &sk, Content: []byte(`{}`)}); err != nil {
				s.log.Info("could not clear the old room's canonical alias", logging.RoomID(req.RoomID), zap.Error(err))
			}
		}
		if !newStored {
			if _, err := s.commit(ctx, nw, newRoom); err != nil {
				return "", fmt.Errorf("replacement room: %w", err)
			}
			newStored = true
		}
		_, err := s.commit(ctx, w, nil)
		return "", err
	})
	if newStored {
		s.publishWorking(nw)
	}
	if err != nil {
		if newStored {
			s.abandonRoom(ctx, nw.roomID, req.User)
		}
		return "", err
	}
	newRoomID := nw.roomID

	// The upgrade is done; what follows carries over the directory entry and
	// memberships. Failures there are logged: both rooms are consistent.
	if err := s.store.MoveRoomDirectory(ctx, req.RoomID, newRoomID); err != nil {
		s.log.Warn("moving the room directory entry and aliases to the upgraded room", logging.RoomID(newRoomID), zap.Error(err))
	}
	joinRule := "invite"
	if jr, ok := content(event.StateJoinRules.Type); ok {
		joinRule = gjson.GetBytes(jr, "join_rule").Str
	}
	s.transferMembers(ctx, req, newRoomID, joinRule)
	return newRoomID, nil
}

// abandonRoom marks a replacement room whose upgrade failed: the upgrading
// user, its only member, leaves it, so nobody is in it.
func (s *Server) abandonRoom(ctx context.Context, roomID id.RoomID, user id.UserID) {
	s.log.Warn("room upgrade failed after the replacement room was stored; abandoning it", logging.RoomID(roomID))
	if _, err := s.Leave(ctx, MembershipRequest{RoomID: roomID, Sender: user, Target: user, Reason: "room upgrade failed"}); err != nil {
		s.log.Warn("leaving the abandoned replacement room", logging.RoomID(roomID), zap.Error(err))
	}
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

package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// ResolveRoom turns a room ID or a local alias into a room ID.
func (s *Server) ResolveRoom(ctx context.Context, roomIDOrAlias string) (id.RoomID, error) {
	if len(roomIDOrAlias) > 0 && roomIDOrAlias[0] == '#' {
		rid, _, err := s.store.ResolveAlias(ctx, id.RoomAlias(roomIDOrAlias))
		if errors.Is(err, storage.ErrNotFound) {
			return "", ErrRoomNotFound
		}
		return rid, err
	}
	if len(roomIDOrAlias) == 0 || roomIDOrAlias[0] != '!' {
		return "", fmt.Errorf("%w: %q is not a room ID or alias", ErrInvalidParam, roomIDOrAlias)
	}
	return id.RoomID(roomIDOrAlias), nil
}

// Join joins req.Sender to the room. Joining a room the sender is already in
// sends nothing. Rooms whose state this server lacks are joined over
// federation (make_join/send_join through req.Via, the inviter or the room ID's server).
func (s *Server) Join(ctx context.Context, req MembershipRequest) (id.EventID, error) {
	req.Target = req.Sender
	if s.remote != nil && !s.resident(ctx, req.RoomID) {
		return s.joinRemote(ctx, req)
	}
	if s.remote != nil {
		// Every local member left: this server's copy of the room stopped
		// being updated then. Rejoin through a server still in the room, which
		// hands over the current state, rather than on the stale copy.
		if others, err := s.otherServersIfNoLocalMember(ctx, req.RoomID); err != nil {
			return "", err
		} else if len(others) > 0 {
			req.Via = append(slices.Clone(req.Via), others...)
			return s.joinRemote(ctx, req)
		}
	}
	authoriser, err := s.restrictedJoinAuthoriser(ctx, req.RoomID, req.Sender)
	if errors.Is(err, errNoLocalAuthoriser) && s.remote != nil {
		// A restricted room none of our members may invite into: join
		// through a server in the room whose members can vouch.
		if servers, jerr := s.JoinedServers(ctx, req.RoomID); jerr == nil {
			others := slices.DeleteFunc(slices.Clone(servers), func(srv string) bool { return srv == s.serverName })
			if len(others) > 0 {
				req.Via = append(slices.Clone(req.Via), others...)
				return s.joinRemote(ctx, req)
			}
		}
	}
	if err != nil {
		return "", err
	}
	// Which user vouches for a restricted join is this server's choice: a
	// client's own join_authorised_via_users_server (on a displayname change,
	// say) is dropped, as it would fail the auth rule's signature check.
	if _, stray := req.Extra["join_authorised_via_users_server"]; stray || authoriser != "" {
		extra := make(map[string]any, len(req.Extra)+1)
		for k, v := range req.Extra {
			extra[k] = v
		}
		delete(extra, "join_authorised_via_users_server")
		if authoriser != "" {
			extra["join_authorised_via_users_server"] = authoriser
		}
		req.Extra = extra
	}
	evID, err := s.member(ctx, req, event.MembershipJoin, func(w *working, content []byte) (bool, error) {
		if cur, ok := w.get(event.StateMember.Type, string(req.Sender)); ok && w.membership(req.Sender) == event.MembershipJoin {
			// Joining again with the same content sends nothing; new content
			// (a displayname, say) is a new join event.
			return sameJSON(cur.pdu.Content, content), nil
		}
		if req.Guest {
			ga, ok := w.get(event.StateGuestAccess.Type, "")
			if !ok || gjson.GetBytes(ga.pdu.Content, "guest_access").Str != "can_join" {
				return false, ErrGuestForbidden
			}
		}
		return false, nil
	})
	if err == nil {
		err = s.store.UnforgetRoom(ctx, req.Sender, req.RoomID)
	}
	return evID, err
}

// otherServersIfNoLocalMember returns the other servers with joined members
// in the room's (last known) state when no local user is joined; nil otherwise.
func (s *Server) otherServersIfNoLocalMember(ctx context.Context, roomID id.RoomID) ([]string, error) {
	servers, err := s.JoinedServers(ctx, roomID)
	if err != nil || slices.Contains(servers, s.serverName) {
		return nil, err
	}
	return servers, nil
}

// Invite invites req.Target.
func (s *Server) Invite(ctx context.Context, req MembershipRequest) (id.EventID, error) {
	return s.member(ctx, req, event.MembershipInvite, nil)
}

// Leave makes req.Sender leave (or reject an invite, or withdraw a knock).
func (s *Server) Leave(ctx context.Context, req MembershipRequest) (id.EventID, error) {
	req.Target = req.Sender
	if s.remote != nil && !s.resident(ctx, req.RoomID) {
		return s.membershipRemote(ctx, req, event.MembershipLeave)
	}
	return s.member(ctx, req, event.MembershipLeave, nil)
}

// Kick removes req.Target.
func (s *Server) Kick(ctx context.Context, req MembershipRequest) (id.EventID, error) {
	return s.member(ctx, req, event.MembershipLeave, func(w *working, _ []byte) (bool, error) {
		switch w.membership(req.Target) {
		case event.MembershipJoin, event.MembershipInvite, event.MembershipKnock:
			return false, nil
		}
		return false, fmt.Errorf("%w: %s is not in the room", ErrForbidden, req.Target)
	})
}

// Ban bans req.Target.
func (s *Server) Ban(ctx context.Context, req MembershipRequest) (id.EventID, error) {
	return s.member(ctx, req, event.MembershipBan, nil)
}

// Unban lifts req.Target's ban.
func (s *Server) Unban(ctx context.Context, req MembershipRequest) (id.EventID, error) {
	return s.member(ctx, req, event.MembershipLeave, func(w *working, _ []byte) (bool, error) {
		if w.membership(req.Target) != event.MembershipBan {
			return false, fmt.Errorf("%w: %s is not banned", ErrForbidden, req.Target)
		}
		return false, nil
	})
}

// Knock asks to join a room with join rule knock.
func (s *Server) Knock(ctx context.Context, req MembershipRequest) (id.EventID, error) {
	req.Target = req.Sender
	if s.remote != nil && !s.resident(ctx, req.RoomID) {
		return s.membershipRemote(ctx, req, event.MembershipKnock)
	}
	return s.member(ctx, req, event.MembershipKnock, nil)
}

// member sends an m.room.member event. pre, when set, runs on the current
// state and the new content under the room lock, and may skip the event
// (returning true) or refuse it.
func (s *Server) member(ctx context.Context, req MembershipRequest, m event.Membership, pre func(w *working, content []byte) (bool, error)) (id.EventID, error) {
	if _, _, err := req.Target.ParseAndValidateRelaxed(); err != nil {
		return "", fmt.Errorf("%w: invalid user ID %q", ErrBadRequest, req.Target)
	}
	scope := "member " + string(req.RoomID) + " " + string(m) + " " + string(req.Target)
	if req.TxnID != "" {
		if evID, err := s.store.EventByTxnID(ctx, req.Sender, req.DeviceID, scope, req.TxnID); err == nil {
			return evID, nil
		}
	}
	return s.inRoom(ctx, req.RoomID, func(w *working) (id.EventID, error) {
		content := map[string]any{}
		if m == event.MembershipJoin || m == event.MembershipInvite {
			s.addProfile(ctx, req.Target, content)
		}
		for k, v := range req.Extra {
			content[k] = v
		}
		content["membership"] = m
		if req.Reason != "" {
			content["reason"] = req.Reason
		}
		b, err := json.Marshal(content)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		if pre != nil {
			skip, err := pre(w, b)
			if err != nil {
				return "", err
			}
			if skip {
				e, _ := w.get(event.StateMember.Type, string(req.Target))
				return e.id, nil
			}
		}
		ne, err := s.add(w, eventSpec{Sender: req.Sender, Type: event.StateMember.Type, StateKey: strPtr(string(req.Target)), Content: b, TxnID: req.TxnID, TxnScope: scope, DeviceID: req.DeviceID, OriginTS: req.OriginTS})
		if err != nil {
			return "", err
		}
		if m == event.MembershipInvite && req.Target.Homeserver() != s.serverName {
			if err := s.inviteRemote(ctx, w, ne, req.Target); err != nil {
				return "", err
			}
		}
		if _, err := s.commit(ctx, w, nil); err != nil {
			return "", err
		}
		return ne.EventID, nil
	})
}

// Forget forgets a room the user has left. It is 400 while the user is still joined or invited.
func (s *Server) Forget(ctx context.Context, user id.UserID, roomID id.RoomID) error {
	ev, err := s.store.CurrentStateEvent(ctx, roomID, event.StateMember.Type, string(user))
	if errors.Is(err, storage.ErrNotFound) {
		if _, err := s.store.GetRoom(ctx, roomID); errors.Is(err, storage.ErrNotFound) {
			return ErrRoomNotFound
		}
		return fmt.Errorf("%w: you are not a member of the room", ErrForbidden)
	} else if err != nil {
		return err
	}
	switch ev.Membership {
	case "join", "invite", "knock":
		return fmt.Errorf("%w: leave the room before forgetting it", ErrBadRequest)
	}
	return s.store.ForgetRoom(ctx, user, roomID)
}

// ProfileChanged sends an updated m.room.member join event, carrying the new
// displayname and avatar_url, into every room the user is joined to. It
// implements clientapi.ProfileListener; failures are logged per room.
func (s *Server) ProfileChanged(ctx context.Context, userID id.UserID, displayName, avatarURL string) {
	rooms, err := s.JoinedRooms(ctx, userID)
	if err != nil {
		s.log.Warn("profile change: list joined rooms", zap.Error(err))
		return
	}
	for _, roomID := range rooms {
		extra := map[string]any{}
		if displayName != "" {
			extra["displayname"] = displayName
		}
		if avatarURL != "" {
			extra["avatar_url"] = avatarURL
		}
		req := MembershipRequest{RoomID: roomID, Sender: userID, Target: userID, Extra: extra}
		if _, err := s.member(ctx, req, event.MembershipJoin, nil); err != nil {
			s.log.Warn("profile change: update member event", zap.String("room_id", string(roomID)), zap.Error(err))
		}
	}
}

// addProfile puts a local user's displayname and avatar_url into member event content.
func (s *Server) addProfile(ctx context.Context, user id.UserID, content map[string]any) {
	if user.Homeserver() != s.serverName {
		return
	}
	prof, err := s.store.GetProfile(ctx, user)
	if err != nil {
		return
	}
	for _, k := range []string{"displayname", "avatar_url"} {
		var v string
		if raw, ok := prof[k]; ok && json.Unmarshal(raw, &v) == nil && v != "" {
			content[k] = v
		}
	}
}

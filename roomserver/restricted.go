package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// restrictedJoinAuthoriser decides a local join into a room whose join rule
// is restricted or knock_restricted (room versions 8+, client-server API
// "Restricted rooms"). It returns "" when the join needs no authorisation (the
// rule is not restricted, or the user is already invited or joined), the local
// member who authorises the join when the user is joined to a room named in
// the rule's allow list, and ErrForbidden when the user satisfies no
// condition. The auth rules (5.3.5.2) check the choice again when the event
// is authorised.
func (s *Server) restrictedJoinAuthoriser(ctx context.Context, roomID id.RoomID, user id.UserID) (id.UserID, error) {
	jr, err := s.store.CurrentStateEvent(ctx, roomID, event.StateJoinRules.Type, "")
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	content := gjson.GetBytes(jr.JSON, "content")
	rule := content.Get("join_rule").Str
	if rule != string(event.JoinRuleRestricted) && rule != string(event.JoinRuleKnockRestricted) {
		return "", nil
	}
	if own, err := s.store.CurrentStateEvent(ctx, roomID, event.StateMember.Type, string(user)); err == nil &&
		(own.Membership == string(event.MembershipJoin) || own.Membership == string(event.MembershipInvite)) {
		return "", nil
	}
	allowed := false
	for _, a := range content.Get("allow").Array() {
		if a.Get("type").Str != "m.room_membership" || a.Get("room_id").Str == "" {
			continue
		}
		m, err := s.store.CurrentStateEvent(ctx, id.RoomID(a.Get("room_id").Str), event.StateMember.Type, string(user))
		if err == nil && m.Membership == string(event.MembershipJoin) {
			allowed = true
			break
		}
	}
	if !allowed {
		return "", fmt.Errorf("%w: you are not joined to any room that the join rule allows", ErrForbidden)
	}
	return s.joinAuthoriser(ctx, roomID)
}

// errNoLocalAuthoriser: no member of this server may invite, so it cannot
// vouch for a restricted join (another server in the room may).
var errNoLocalAuthoriser = fmt.Errorf("%w: no member of this server can authorise joining the room", ErrForbidden)

// joinAuthoriser picks a local joined member with the power to invite, the
// most powerful first (room v12 creators have unlimited power).
func (s *Server) joinAuthoriser(ctx context.Context, roomID id.RoomID) (id.UserID, error) {
	var pl event.PowerLevelsEventContent
	if ev, err := s.store.CurrentStateEvent(ctx, roomID, event.StatePowerLevels.Type, ""); err == nil {
		if err := json.Unmarshal([]byte(gjson.GetBytes(ev.JSON, "content").Raw), &pl); err != nil {
			return "", fmt.Errorf("power levels of %s: %w", roomID, err)
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return "", err
	}
	creators := map[id.UserID]bool{}
	if ev, err := s.store.CurrentStateEvent(ctx, roomID, event.StateCreate.Type, ""); err == nil {
		v := id.RoomVersion(gjson.GetBytes(ev.JSON, "content.room_version").Str)
		if v.IsKnown() && v.PrivilegedRoomCreators() {
			creators[ev.Sender] = true
			for _, c := range gjson.GetBytes(ev.JSON, "content.additional_creators").Array() {
				creators[id.UserID(c.Str)] = true
			}
		}
	}
	ms, err := s.store.RoomMemberships(ctx, roomID)
	if err != nil {
		return "", err
	}
	var best id.UserID
	bestLevel := -1 << 62
	for _, m := range ms {
		if m.Membership != string(event.MembershipJoin) || m.UserID.Homeserver() != s.serverName {
			continue
		}
		level := pl.GetUserLevel(m.UserID)
		if creators[m.UserID] {
			level = 1 << 62
		}
		if level >= pl.Invite() && level > bestLevel {
			best, bestLevel = m.UserID, level
		}
	}
	if best == "" {
		return "", errNoLocalAuthoriser
	}
	return best, nil
}

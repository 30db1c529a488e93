package roomserver

import (
	"context"
	"errors"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// RoomPreview is GET /room_summary's answer: a room's summary and the
// requesting user's membership ("" when unauthenticated or never a member).
type RoomPreview struct {
	*RoomSummary
	Membership string
}

// PreviewRoom summarises roomID for user (empty: an unauthenticated request)
// as GET /room_summary describes. A room this server is in answers from its
// own state when user may see it: a member (joined, invited or knocking), a
// world_readable room, a public or knockable join rule, or a restricted one
// whose allowed rooms user is in. Other rooms are asked of the via servers
// (federation /hierarchy), for authenticated users only; a stale local copy
// (an invite's stripped state) is the fallback for an invited or knocking
// user. Everything else, a ban included, is ErrRoomNotFound, so the answer
// does not tell whether a hidden room exists.
func (s *Server) PreviewRoom(ctx context.Context, user id.UserID, roomID id.RoomID, via []string) (*RoomPreview, error) {
	sum, err := s.Summary(ctx, roomID)
	if err != nil && !errors.Is(err, ErrRoomNotFound) {
		return nil, err
	}
	membership := ""
	if sum != nil && user != "" {
		for _, ev := range sum.State {
			if ev.Type == event.StateMember.Type && ev.StateKey != nil && *ev.StateKey == string(user) {
				membership = ev.Membership
			}
		}
	}
	if sum != nil && s.residentIn(sum) {
		ok := membership == "knock"
		if !ok && user != "" {
			if ok, err = s.mayPeek(ctx, user, sum); err != nil {
				return nil, err
			}
		} else if !ok {
			ok = publiclyVisible(sum)
		}
		if !ok {
			return nil, ErrRoomNotFound
		}
		sum.State = nil
		return &RoomPreview{RoomSummary: sum, Membership: membership}, nil
	}
	if user == "" {
		return nil, ErrRoomNotFound
	}
	if hr := s.newRemoteHierarchy().room(ctx, roomID, via, false); hr != nil {
		ok := membership == "knock"
		if !ok {
			if ok, err = s.mayPeekRemote(ctx, user, hr); err != nil {
				return nil, err
			}
		}
		if ok {
			return &RoomPreview{RoomSummary: hr.RoomSummary, Membership: membership}, nil
		}
		return nil, ErrRoomNotFound
	}
	if sum != nil && (membership == "invite" || membership == "knock") {
		sum.State = nil
		return &RoomPreview{RoomSummary: sum, Membership: membership}, nil
	}
	return nil, ErrRoomNotFound
}

// publiclyVisible: anyone may preview the room without an account.
func publiclyVisible(sum *RoomSummary) bool {
	switch sum.JoinRule {
	case "public", "knock", "knock_restricted":
		return true
	}
	return sum.WorldReadable
}

package roomserver

import (
	"context"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/logging"
)

// emit hands a committed event to the subscriber, then acts on it here: a
// room closed to guests (m.room.guest_access no longer can_join) sees its
// local guests leave.
func (s *Server) emit(out OutputEvent) {
	s.onEvent(out)
	ev := out.Event
	if ev.Type == event.StateGuestAccess.Type && ev.StateKey != nil && *ev.StateKey == "" && !ev.Outlier && !ev.Rejected && !ev.SoftFailed &&
		gjson.GetBytes(ev.JSON, "content.guest_access").Str != string(event.GuestAccessCanJoin) {
		// Not under the room's locks: the leaves are writes of their own.
		go s.removeGuests(ev.RoomID)
	}
}

// removeGuests makes the room's joined local guest accounts leave, as if
// each had asked to.
func (s *Server) removeGuests(roomID id.RoomID) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ms, err := s.store.RoomMemberships(ctx, roomID)
	if err != nil {
		s.log.Warn("guests of a room closed to them", logging.RoomID(roomID), zap.Error(err))
		return
	}
	for _, m := range ms {
		if m.Membership != string(event.MembershipJoin) || m.UserID.Homeserver() != s.serverName {
			continue
		}
		acct, err := s.store.GetAccount(ctx, m.UserID)
		if err != nil || !acct.IsGuest {
			continue
		}
		if _, err := s.Leave(ctx, MembershipRequest{RoomID: roomID, Sender: m.UserID}); err != nil {
			s.log.Warn("guest did not leave a room closed to guests", logging.RoomID(roomID), logging.UserID(m.UserID), zap.Error(err))
		}
	}
}

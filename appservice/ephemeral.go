package appservice

import (
	"context"
	"encoding/json"
	"math"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/asapi"
)

// ephemeralItem is an ephemeral event waiting to be queued for the services
// interested in it.
type ephemeralItem struct {
	ev        json.RawMessage
	room      id.RoomID
	user      id.UserID
	userRooms []id.RoomID
}

// WantsEphemeral says whether a service with a URL asked for ephemeral events.
func (s *Sender) WantsEphemeral() bool {
	for _, w := range s.workers {
		if w.as.WantsEphemeral() {
			return true
		}
	}
	return false
}

// OnEphemeral takes an ephemeral event for the services that receive them
// (MSC2409): ev is the event as a transaction carries it; room is set for
// m.typing and m.receipt, user for m.receipt and m.presence, and userRooms
// are the rooms a presence user is joined to. It does not block: the event
// is queued in the database by a goroutine of its own (and dropped, with a
// warning, when that falls far behind).
func (s *Sender) OnEphemeral(ev json.RawMessage, room id.RoomID, user id.UserID, userRooms []id.RoomID) {
	select {
	case s.ephemeral <- ephemeralItem{ev: ev, room: room, user: user, userRooms: userRooms}:
	default:
		s.log.Warn("ephemeral event for application services dropped: queue full", zap.String("room_id", string(room)))
	}
}

// queueEphemeral writes ephemeral events to the queues of the services
// interested in them, a batch per database transaction, until ctx ends.
func (s *Sender) queueEphemeral(ctx context.Context) {
	for {
		var batch []ephemeralItem
		select {
		case <-ctx.Done():
			return
		case it := <-s.ephemeral:
			batch = append(batch, it)
		}
	drain:
		for len(batch) < maxTxnItems {
			select {
			case it := <-s.ephemeral:
				batch = append(batch, it)
			default:
				break drain
			}
		}
		items := map[string][][]byte{}
		for _, it := range batch {
			for _, w := range s.workers {
				if w.as.WantsEphemeral() && s.wantsEphemeralItem(ctx, w.as, it) {
					items[w.as.ID] = append(items[w.as.ID], it.ev)
				}
			}
		}
		if len(items) == 0 {
			continue
		}
		if err := s.store.QueueAppServiceEphemeral(ctx, items); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("queue ephemeral events for application services", zap.Error(err))
			}
			continue
		}
		for _, w := range s.workers {
			if items[w.as.ID] != nil {
				w.kick()
			}
		}
	}
}

// wantsEphemeralItem: room events (typing, receipts) go to the services
// interested in the room or the user; presence to those interested in the
// user or in one of their rooms.
func (s *Sender) wantsEphemeralItem(ctx context.Context, as *asapi.Service, it ephemeralItem) bool {
	if it.user != "" && as.IsInterestedInUser(it.user) {
		return true
	}
	rooms := it.userRooms
	if it.room != "" {
		rooms = []id.RoomID{it.room}
	}
	for _, room := range rooms {
		f, err := s.cachedRoomFacts(ctx, room)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("read room for application service interest", zap.String("room_id", string(room)), zap.Error(err))
			}
			continue
		}
		if s.interestedInRoom(as, room, f, math.MaxInt64) {
			return true
		}
	}
	return false
}

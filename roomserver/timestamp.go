package roomserver

import (
	"context"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// TimestampToEvent finds the event closest to ts in direction dir ("f": the
// first at or after ts, "b": the last at or before ts) among the room's events
// user may see (GET /rooms/{roomId}/timestamp_to_event). ErrEventNotFound if none.
func (s *Server) TimestampToEvent(ctx context.Context, user id.UserID, roomID id.RoomID, ts int64, dir string) (*storage.Event, error) {
	v, _, _, err := s.access(ctx, user, roomID)
	if err != nil {
		return nil, err
	}
	maxPos, err := s.store.MaxStreamPos(ctx)
	if err != nil {
		return nil, err
	}
	const page = 500
	var best *storage.Event
	for from := int64(beforeAll); ; { // backfilled events (negative positions) too
		evs, err := s.store.RoomEvents(ctx, roomID, from, maxPos, page, false)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			if !v.CanSee(e) {
				continue
			}
			switch {
			case dir == "f" && e.OriginTS >= ts && (best == nil || e.OriginTS < best.OriginTS):
				best = e
			case dir == "b" && e.OriginTS <= ts && (best == nil || e.OriginTS >= best.OriginTS):
				best = e
			}
		}
		if len(evs) < page {
			break
		}
		from = evs[len(evs)-1].StreamPos
	}
	if best == nil {
		return nil, ErrEventNotFound
	}
	return best, nil
}

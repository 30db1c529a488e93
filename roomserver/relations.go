package roomserver

import (
	"context"
	"errors"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// RelationsResponse is a page of relations or threads.
type RelationsResponse struct {
	Events []*storage.Event
	// Next is the stream position to continue from when there may be more (else 0).
	Next int64
}

// visibleEvent returns eventID when user may see it in roomID, with the user's visibility.
func (s *Server) visibleEvent(ctx context.Context, user id.UserID, roomID id.RoomID, eventID id.EventID) (*Visibility, *storage.Room, error) {
	v, info, _, err := s.access(ctx, user, roomID)
	if errors.Is(err, ErrForbidden) {
		return nil, nil, ErrEventNotFound
	} else if err != nil {
		return nil, nil, err
	}
	ev, err := s.store.GetEvent(ctx, eventID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (ev.RoomID != roomID || ev.Rejected || ev.Outlier || !v.CanSee(ev))) {
		return nil, nil, ErrEventNotFound
	} else if err != nil {
		return nil, nil, err
	}
	return v, info, nil
}

// Relations returns the events relating to q.EventID that user may see
// (GET /rooms/{roomId}/relations/{eventId}). The parent must be visible too.
func (s *Server) Relations(ctx context.Context, user id.UserID, q storage.RelationsQuery) (*RelationsResponse, error) {
	v, info, err := s.visibleEvent(ctx, user, q.RoomID, q.EventID)
	if err != nil {
		return nil, err
	}
	evs, err := s.store.Relations(ctx, q)
	if err != nil {
		return nil, err
	}
	resp := &RelationsResponse{}
	if len(evs) == q.Limit && q.Limit > 0 {
		resp.Next = evs[len(evs)-1].StreamPos
		if q.Backwards {
			resp.Next--
		}
	}
	visible := evs[:0]
	for _, ev := range evs {
		if v.CanSee(ev) {
			visible = append(visible, ev)
		}
	}
	resp.Events, err = s.hideErased(ctx, v, info.Version, visible)
	return resp, err
}

// Threads returns a room's thread roots that user may see, most recently
// active first, those whose latest reply is before pos `before` (0: newest)
// (GET /rooms/{roomId}/threads). participated keeps threads user took part in.
func (s *Server) Threads(ctx context.Context, user id.UserID, roomID id.RoomID, participated bool, before int64, limit int) (*RelationsResponse, error) {
	v, info, _, err := s.access(ctx, user, roomID)
	if err != nil {
		return nil, err
	}
	var participant id.UserID
	if participated {
		participant = user
	}
	roots, err := s.store.Threads(ctx, roomID, participant, before, limit)
	if err != nil {
		return nil, err
	}
	resp := &RelationsResponse{Events: []*storage.Event{}}
	if len(roots) == limit && limit > 0 {
		resp.Next = roots[len(roots)-1].LatestPos
	}
	ids := make([]id.EventID, len(roots))
	for i, r := range roots {
		ids[i] = r.EventID
	}
	evs, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[id.EventID]*storage.Event, len(evs))
	for _, ev := range evs {
		byID[ev.EventID] = ev
	}
	for _, r := range roots {
		if ev := byID[r.EventID]; ev != nil && ev.RoomID == roomID && !ev.Rejected && !ev.Outlier && v.CanSee(ev) {
			resp.Events = append(resp.Events, ev)
		}
	}
	resp.Events, err = s.hideErased(ctx, v, info.Version, resp.Events)
	return resp, err
}

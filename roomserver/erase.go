package roomserver

import (
	"context"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// HideErased is hideErased for callers that hold a Visibility (sync
// timelines with events from before the user's join).
func (s *Server) HideErased(ctx context.Context, v *Visibility, roomID id.RoomID, evs []*storage.Event) ([]*storage.Event, error) {
	if len(evs) == 0 {
		return evs, nil
	}
	room, err := s.store.GetRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	return s.hideErased(ctx, v, room.Version, evs)
}

// hideErased serves the events of users deactivated with erase redacted to
// a user who was not joined to the room when they were sent (as Synapse
// does): members who saw a message keep seeing it, later joiners do not.
func (s *Server) hideErased(ctx context.Context, v *Visibility, version id.RoomVersion, evs []*storage.Event) ([]*storage.Event, error) {
	var senders []id.UserID
	seen := map[id.UserID]bool{}
	for _, ev := range evs {
		if ev.Sender != v.user && !ev.Redacted && !seen[ev.Sender] {
			seen[ev.Sender] = true
			senders = append(senders, ev.Sender)
		}
	}
	if len(senders) == 0 {
		return evs, nil
	}
	erased, err := s.store.ErasedUsers(ctx, senders)
	if err != nil || len(erased) == 0 {
		return evs, err
	}
	out := make([]*storage.Event, len(evs))
	for i, ev := range evs {
		out[i] = ev
		if !erased[ev.Sender] || ev.Redacted || ev.Sender == v.user || v.MembershipAt(ev.StreamPos) == "join" {
			continue
		}
		red, _, err := redactStored(version, ev.JSON)
		if err != nil {
			continue
		}
		cp := *ev
		cp.JSON, cp.Unsigned, cp.Redacted = red, nil, true
		out[i] = &cp
	}
	return out, nil
}

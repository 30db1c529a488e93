package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// ServerInRoom reports whether server may read the room's events: it has a
// joined member now, or the room is world_readable. (History visibility at
// each event is approximated by the current state.)
func (s *Server) ServerInRoom(ctx context.Context, server string, roomID id.RoomID) (bool, error) {
	if _, err := s.store.GetRoom(ctx, roomID); errors.Is(err, storage.ErrNotFound) {
		return false, ErrRoomNotFound
	} else if err != nil {
		return false, err
	}
	ms, err := s.store.RoomMemberships(ctx, roomID)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if m.UserID.Homeserver() == server && m.Membership == "join" {
			return true, nil
		}
	}
	hv, err := s.store.CurrentStateEvent(ctx, roomID, event.StateHistoryVisibility.Type, "")
	if err == nil && gjson.GetBytes(hv.JSON, "content.history_visibility").Str == "world_readable" {
		return true, nil
	}
	return false, nil
}

// JoinedServers lists the servers with joined members in a room.
func (s *Server) JoinedServers(ctx context.Context, roomID id.RoomID) ([]string, error) {
	s.mu.Lock()
	r := s.rooms[roomID]
	s.mu.Unlock()
	var gen uint64
	if r != nil {
		var servers []string
		var ok bool
		if servers, gen, ok = r.servers.get(); ok {
			return servers, nil
		}
	}
	out, err := s.joinedServers(ctx, roomID)
	if err == nil && r != nil {
		r.servers.set(out, gen)
	}
	return out, err
}

// joinedServers reads the servers with joined members of roomID from storage.
func (s *Server) joinedServers(ctx context.Context, roomID id.RoomID) ([]string, error) {
	ms, err := s.store.RoomMemberships(ctx, roomID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		if m.Membership == "join" && !slices.Contains(out, m.UserID.Homeserver()) {
			out = append(out, m.UserID.Homeserver())
		}
	}
	sort.Strings(out)
	return out, nil
}

// FederationEvent returns a stored event of roomID (any room when empty) in federation format.
func (s *Server) FederationEvent(ctx context.Context, roomID id.RoomID, eventID id.EventID) (*storage.Event, error) {
	ev, err := s.store.GetEvent(ctx, eventID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && roomID != "" && ev.RoomID != roomID) {
		return nil, ErrEventNotFound
	}
	return ev, err
}

// StateAtEvent returns the state before eventID (state_ids/state) and that state's auth chain IDs.
func (s *Server) StateAtEvent(ctx context.Context, roomID id.RoomID, eventID id.EventID) ([]*storage.Event, []*storage.Event, error) {
	ev, err := s.FederationEvent(ctx, roomID, eventID)
	if err != nil {
		return nil, nil, err
	}
	if ev.Outlier || ev.Rejected {
		return nil, nil, fmt.Errorf("%w: no state known at %s", ErrEventNotFound, eventID)
	}
	ids, err := s.store.StateIDs(ctx, ev.StateBefore)
	if err != nil {
		return nil, nil, err
	}
	list := make([]id.EventID, 0, len(ids))
	for _, v := range ids {
		list = append(list, v)
	}
	state, err := s.store.GetEvents(ctx, list)
	if err != nil {
		return nil, nil, err
	}
	chain, err := s.AuthChain(ctx, list)
	if err != nil {
		return nil, nil, err
	}
	return state, chain, nil
}

// walkBack visits events reachable backwards through prev_events from
// start (included when includeStart), breadth first, stopping at stop, and
// returns up to limit accepted events of the room.
func (s *Server) walkBack(ctx context.Context, roomID id.RoomID, start, stop []id.EventID, limit int, includeStart bool) ([]*storage.Event, error) {
	seen := map[id.EventID]bool{}
	for _, e := range stop {
		seen[e] = true
	}
	var out []*storage.Event
	frontier := []id.EventID{}
	for _, e := range start {
		if !seen[e] {
			seen[e] = true
			frontier = append(frontier, e)
		}
	}
	first := true
	for len(frontier) > 0 && len(out) < limit {
		evs, err := s.store.GetEvents(ctx, frontier)
		if err != nil {
			return nil, err
		}
		sort.Slice(evs, func(i, j int) bool { return evs[i].Depth > evs[j].Depth })
		frontier = nil
		for _, e := range evs {
			if e.RoomID != roomID {
				continue
			}
			if (!first || includeStart) && !e.Rejected && !e.Outlier && len(out) < limit {
				out = append(out, e)
			}
			for _, p := range refIDs(gjson.GetBytes(e.JSON, "prev_events")) {
				if !seen[p] {
					seen[p] = true
					frontier = append(frontier, p)
				}
			}
		}
		first = false
	}
	return out, nil
}

// Backfill returns up to limit events preceding (and including) from, newest first.
func (s *Server) Backfill(ctx context.Context, roomID id.RoomID, from []id.EventID, limit int) ([]*storage.Event, error) {
	return s.walkBack(ctx, roomID, from, nil, limit, true)
}

// MissingEventsBetween answers get_missing_events: up to limit events
// before latest (excluded) and after earliest, oldest first.
func (s *Server) MissingEventsBetween(ctx context.Context, roomID id.RoomID, earliest, latest []id.EventID, limit int) ([]*storage.Event, error) {
	evs, err := s.walkBack(ctx, roomID, latest, earliest, limit, false)
	if err != nil {
		return nil, err
	}
	slices.Reverse(evs)
	return evs, nil
}

// StrippedState returns the room's stripped state events (type, state_key,
// sender, content) shown to invited and knocking users.
func (s *Server) StrippedState(ctx context.Context, roomID id.RoomID) ([]map[string]any, error) {
	out := []map[string]any{}
	for _, t := range strippedForInvite {
		ev, err := s.store.CurrentStateEvent(ctx, roomID, t, "")
		if errors.Is(err, storage.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, map[string]any{"type": ev.Type, "state_key": "", "sender": ev.Sender,
			"content": json.RawMessage(gjson.GetBytes(ev.JSON, "content").Raw)})
	}
	return out, nil
}

// FilterForServer applies history visibility for a remote server to events
// it asked for (backfill, get_missing_events, event): an event the server
// may not see (history_visibility "joined" or "invited" and no member of the
// server joined, or invited, at that event) is returned redacted.
func (s *Server) FilterForServer(ctx context.Context, server string, version id.RoomVersion, evs []*storage.Event) ([]*storage.Event, error) {
	states := map[int64]map[storage.StateKeyTuple]id.EventID{}
	out := make([]*storage.Event, 0, len(evs))
	var senders []id.UserID
	for _, ev := range evs {
		if !ev.Redacted && !slices.Contains(senders, ev.Sender) {
			senders = append(senders, ev.Sender)
		}
	}
	erased, err := s.store.ErasedUsers(ctx, senders)
	if err != nil {
		return nil, err
	}
	for _, ev := range evs {
		if erased[ev.Sender] && !ev.Redacted {
			// Users deactivated with erasure: other servers get their events
			// redacted (the redacted form keeps what the auth rules need).
			cp, err := redactedCopy(version, ev)
			if err != nil {
				return nil, err
			}
			out = append(out, cp)
			continue
		}
		ids, ok := states[ev.StateBefore]
		if !ok {
			var err error
			if ids, err = s.store.StateIDs(ctx, ev.StateBefore); err != nil {
				return nil, err
			}
			states[ev.StateBefore] = ids
		}
		visible, err := s.serverSees(ctx, server, ids)
		if err != nil {
			return nil, err
		}
		if visible || ev.StateKey != nil {
			// State events stay whole: the server needs them to check auth.
			out = append(out, ev)
			continue
		}
		cp, err := redactedCopy(version, ev)
		if err != nil {
			return nil, err
		}
		out = append(out, cp)
	}
	return out, nil
}

// redactedCopy returns a copy of ev with its PDU redacted.
func redactedCopy(version id.RoomVersion, ev *storage.Event) (*storage.Event, error) {
	red, _, err := redactStored(version, ev.JSON)
	if err != nil {
		return nil, err
	}
	cp := *ev
	cp.JSON = red
	return &cp, nil
}

// serverSees decides visibility for a server at a state.
func (s *Server) serverSees(ctx context.Context, server string, ids map[storage.StateKeyTuple]id.EventID) (bool, error) {
	hv := "shared"
	if e, ok := ids[storage.StateKeyTuple{Type: event.StateHistoryVisibility.Type}]; ok {
		ev, err := s.store.GetEvent(ctx, e)
		if err != nil {
			return false, err
		}
		if v := gjson.GetBytes(ev.JSON, "content.history_visibility").Str; v != "" {
			hv = v
		}
	}
	if hv == "world_readable" || hv == "shared" {
		return true, nil
	}
	var members []id.EventID
	for k, e := range ids {
		if k.Type == event.StateMember.Type && id.UserID(k.StateKey).Homeserver() == server {
			members = append(members, e)
		}
	}
	evs, err := s.store.GetEvents(ctx, members)
	if err != nil {
		return false, err
	}
	for _, m := range evs {
		if m.Membership == "join" || (hv == "invited" && m.Membership == "invite") {
			return true, nil
		}
	}
	return false, nil
}

// EventNearTS finds the room's accepted event closest to ts in direction
// dir ("f": the first at or after ts, "b": the last at or before ts), by
// origin_server_ts (timestamp_to_event). ErrEventNotFound if none.
func (s *Server) EventNearTS(ctx context.Context, roomID id.RoomID, ts int64, dir string) (*storage.Event, error) {
	max, err := s.store.MaxStreamPos(ctx)
	if err != nil {
		return nil, err
	}
	var best *storage.Event
	from := int64(beforeAll) // backfilled events (negative positions) too
	for {
		evs, err := s.store.RoomEvents(ctx, roomID, from, max, 500, false)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			switch {
			case dir == "f" && e.OriginTS >= ts && (best == nil || e.OriginTS < best.OriginTS):
				best = e
			case dir == "b" && e.OriginTS <= ts && (best == nil || e.OriginTS >= best.OriginTS):
				best = e
			}
		}
		if len(evs) < 500 {
			break
		}
		from = evs[len(evs)-1].StreamPos
	}
	if best == nil {
		return nil, ErrEventNotFound
	}
	return best, nil
}

package roomserver

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"parley/roomserver/stateres"
	"parley/storage"
)

// ResolveState resolves the states of several state groups (the states after
// each forward extremity of a forked DAG) with state resolution v2/v2.1.
//
// Local events never fork the DAG (writes into a room are serialised, and
// prev_events are all forward extremities), so the local send path does not
// call it. Federation calls it when an incoming event has several prev_events,
// or when a room has several forward extremities, to compute the state before
// the event and the new current state; it then stores the event with
// NewEvent.UpdateCurrentState according to the resolved state.
func (s *Server) ResolveState(ctx context.Context, version id.RoomVersion, groups []int64) (map[storage.StateKeyTuple]id.EventID, error) {
	maps := make([]map[storage.StateKeyTuple]id.EventID, 0, len(groups))
	for _, g := range groups {
		ids, err := s.store.StateIDs(ctx, g)
		if err != nil {
			return nil, fmt.Errorf("load state group %d: %w", g, err)
		}
		maps = append(maps, ids)
	}
	return s.resolveMaps(ctx, version, maps)
}

// resolveMaps resolves state maps whose events are stored (outliers included).
func (s *Server) resolveMaps(ctx context.Context, version id.RoomVersion, states []map[storage.StateKeyTuple]id.EventID) (map[storage.StateKeyTuple]id.EventID, error) {
	sets := make([]stateres.StateMap, 0, len(states))
	for _, ids := range states {
		m := make(stateres.StateMap, len(ids))
		for k, v := range ids {
			m[stateres.StateKey{Type: k.Type, StateKey: k.StateKey}] = v
		}
		sets = append(sets, m)
	}
	fetch := func(ctx context.Context, ids []id.EventID) ([]*pdu.PDU, error) {
		evs, err := s.store.GetEvents(ctx, ids)
		if err != nil {
			return nil, err
		}
		out := make([]*pdu.PDU, 0, len(evs))
		for _, ev := range evs {
			p, err := parseStored(version, ev)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, nil
	}
	resolved, err := stateres.Resolve(ctx, stateResVersion(version), sets, fetch)
	if err != nil {
		return nil, err
	}
	out := make(map[storage.StateKeyTuple]id.EventID, len(resolved))
	for k, v := range resolved {
		out[storage.StateKeyTuple{Type: k.Type, StateKey: k.StateKey}] = v
	}
	return out, nil
}

package roomserver

import (
	"context"
	"encoding/json/jsontext"
	"fmt"
	"slices"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"parley/internal/authrules"
	"parley/internal/logging"
	"parley/storage"
)

// maxEventFetch bounds the events fetched one by one (/event) to fill in the
// state at a gap; when more are missing, one /state request fetches them all.
const maxEventFetch = 50

// stateAfterRemote handles a prev_event that get_missing_events could not
// provide: it asks origin for the state before prev (state_ids), fetches
// prev and the state and auth chain events this server lacks (/event, or
// /state when many are missing), stores them as outliers (rejected when they
// fail the auth rules against their own auth events), and returns the state
// after prev. r must be locked.
func (s *Server) stateAfterRemote(ctx context.Context, r *room, origin string, prev id.EventID) (map[storage.StateKeyTuple]id.EventID, error) {
	stateIDs, chainIDs, err := s.remote.StateIDs(ctx, origin, r.id, prev)
	if err != nil {
		return nil, fmt.Errorf("state_ids at %s: %w", prev, err)
	}
	want := []id.EventID{prev}
	for _, e := range slices.Concat(stateIDs, chainIDs) {
		if !slices.Contains(want, e) {
			want = append(want, e)
		}
	}
	missing, err := s.missingEvents(ctx, want)
	if err != nil {
		return nil, err
	}
	var raws []jsontext.Value
	if len(missing) > maxEventFetch {
		state, chain, err := s.remote.State(ctx, origin, r.id, prev)
		if err != nil {
			return nil, fmt.Errorf("state at %s: %w", prev, err)
		}
		raws = slices.Concat(state, chain)
		if slices.Contains(missing, prev) {
			raw, err := s.remote.Event(ctx, origin, prev)
			if err != nil {
				return nil, fmt.Errorf("event %s: %w", prev, err)
			}
			raws = append(raws, raw)
		}
	} else {
		for _, m := range missing {
			raw, err := s.remote.Event(ctx, origin, m)
			if err != nil {
				s.log.Info("fetching a state event failed", logging.EventID(m), zap.String("origin", origin), zap.Error(err))
				continue
			}
			raws = append(raws, raw)
		}
	}
	if err := s.storeOutliers(ctx, r, missing, raws); err != nil {
		return nil, err
	}

	prevEv, err := s.store.GetEvent(ctx, prev)
	if err != nil {
		return nil, fmt.Errorf("prev_event %s not obtained: %w", prev, err)
	}
	evs, err := s.store.GetEvents(ctx, stateIDs)
	if err != nil {
		return nil, err
	}
	state := make(map[storage.StateKeyTuple]id.EventID, len(evs)+1)
	for _, e := range evs {
		if e.RoomID == r.id && e.StateKey != nil && !e.Rejected {
			state[storage.StateKeyTuple{Type: e.Type, StateKey: *e.StateKey}] = e.EventID
		}
	}
	if prevEv.StateKey != nil && !prevEv.Rejected {
		state[storage.StateKeyTuple{Type: prevEv.Type, StateKey: *prevEv.StateKey}] = prev
	}
	return state, nil
}

// storeOutliers checks fetched events (only those in wanted, of r's room)
// against their own auth events, oldest first, and stores them as outliers.
func (s *Server) storeOutliers(ctx context.Context, r *room, wanted []id.EventID, raws []jsontext.Value) error {
	byID := map[id.EventID]*remoteEvent{}
	for _, raw := range raws {
		e, err := s.parseRemote(r.version, raw)
		if err != nil {
			s.log.Info("fetched event failed checks", zap.Error(err))
			continue
		}
		if e.p.RoomID != r.id || !slices.Contains(wanted, e.id) {
			continue
		}
		byID[e.id] = e
	}
	ordered := byDepth(byID)
	rejected := map[id.EventID]bool{}
	stored := s.storedPDUs(ctx, r.version)
	getEvents := func(ids []id.EventID) ([]*pdu.PDU, error) {
		return pdusFrom(ids, func(x id.EventID) (*pdu.PDU, bool) {
			e := byID[x]
			if e == nil {
				return nil, false
			}
			e.p.InternalMeta.Rejected = rejected[x]
			return e.p, true
		}, stored)
	}
	req := storage.StoreEventsRequest{RoomID: r.id}
	for _, e := range ordered {
		if err := authrules.Authorize(r.version, e.p, nil, getEvents, s.getKey); err != nil {
			rejected[e.id] = true
			s.log.Info("fetched state event rejected", logging.EventID(e.id), zap.Error(err))
		}
		ne := &storage.NewEvent{Event: storage.Event{EventID: e.id, RoomID: r.id, Type: e.p.Type, StateKey: e.p.StateKey,
			Sender: e.p.Sender, Depth: e.p.Depth, OriginTS: e.p.OriginServerTS, JSON: e.json, Outlier: true, Rejected: rejected[e.id]}}
		if e.p.Type == event.StateMember.Type {
			ne.Membership = gjson.GetBytes(e.p.Content, "membership").Str
		}
		req.Events = append(req.Events, ne)
	}
	if len(req.Events) == 0 {
		return nil
	}
	if _, err := s.store.StoreEvents(ctx, req); err != nil {
		return fmt.Errorf("store fetched state: %w", err)
	}
	return nil
}

package roomserver

import (
	"context"
	"encoding/json/jsontext"
	"errors"
	"slices"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"parley/internal/authrules"
	"parley/internal/logging"
	"parley/storage"
)

// Outbound backfill: when a backwards /messages runs out of local events
// before the room's m.room.create, the roomserver asks servers in the room
// for older events (federation backfill), once per request.
//
// Backfilled events are stored with negative stream positions below every
// existing one (storage.RoomStore.StoreBackfill): they sort before all other
// events, no sync "since" position ever returns them, and they change
// neither the current state nor the forward extremities. Their state before
// and after is the earliest local state (the state before the room's
// earliest timeline event, for a room joined over federation the state the
// resident server gave at the join).
//
// History visibility: backfilled state events (m.room.history_visibility,
// memberships) enter the timeline with their positions, so Visibility judges
// every backfilled event by the history visibility and memberships that
// precede it in stream order, as for local events. Events older than every
// known m.room.history_visibility event of the timeline are judged by the
// history visibility in the earliest local state (Visibility.early), not by
// the spec's default "shared": backfilling part of a "joined" room must not
// show its history. Backfilled events are not indexed for search or
// relations.

const (
	// backfillTimeout bounds the time one /messages request spends backfilling.
	backfillTimeout = 10 * time.Second
	// maxBackfill bounds the events asked for at once (the serving side caps at 100).
	maxBackfill = 100
)

// maybeBackfill asks other servers of the room for up to limit events older
// than the room's earliest timeline event, unless that is the room's
// m.room.create event, and stores the ones that pass the checks. It
// returns how many were stored; failures of remote servers are logged.
func (s *Server) maybeBackfill(ctx context.Context, info *storage.Room, limit int) (int, error) {
	if s.remote == nil {
		return 0, nil
	}
	earliest, err := s.store.EarliestEvent(ctx, info.RoomID)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	if earliest.Type == event.StateCreate.Type {
		return 0, nil
	}
	servers, err := s.JoinedServers(ctx, info.RoomID)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, backfillTimeout)
	defer cancel()
	limit = min(max(limit, 1)+1, maxBackfill) // the answer includes the event itself
	for _, srv := range servers {
		if srv == s.serverName {
			continue
		}
		if ok, err := s.ServerAllowed(ctx, info.RoomID, srv); err != nil || !ok {
			continue
		}
		raws, err := s.remote.Backfill(ctx, srv, info.RoomID, []id.EventID{earliest.EventID}, limit)
		if err != nil {
			s.log.Info("backfill failed", logging.RoomID(info.RoomID), zap.String("server", srv), zap.Error(err))
			if ctx.Err() != nil {
				return 0, nil
			}
			continue
		}
		n, err := s.storeBackfill(ctx, info, earliest, raws, limit)
		if err != nil {
			return 0, err
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, nil
}

// storeBackfill checks PDUs of a backfill answer (checks on receipt: shape,
// signatures, hashes, event ID; auth rules against their own auth events)
// and stores those that pass and are not yet in the timeline, newest first.
func (s *Server) storeBackfill(ctx context.Context, info *storage.Room, earliest *storage.Event, raws []jsontext.Value, limit int) (int, error) {
	byID := map[id.EventID]*remoteEvent{}
	var ids []id.EventID
	for _, raw := range raws {
		e, err := s.parseRemote(info.Version, raw)
		if err != nil {
			s.log.Info("backfilled event failed checks", logging.RoomID(info.RoomID), zap.Error(err))
			continue
		}
		// Only history: an event deeper than the one backfilled from would
		// sort before events it follows.
		if e.p.RoomID != info.RoomID || byID[e.id] != nil || e.p.Depth > earliest.Depth {
			continue
		}
		byID[e.id] = e
		ids = append(ids, e.id)
	}
	known, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return 0, err
	}
	for _, k := range known {
		if !k.Outlier || k.Rejected {
			delete(byID, k.EventID) // already in the timeline, or rejected
		}
	}
	ordered := byDepth(byID)
	stored := s.storedPDUs(ctx, info.Version)
	passed := map[id.EventID]bool{}
	getEvents := func(want []id.EventID) ([]*pdu.PDU, error) {
		return pdusFrom(want, func(x id.EventID) (*pdu.PDU, bool) {
			e := byID[x]
			if e == nil {
				return nil, false
			}
			if passed[x] {
				return e.p, true
			}
			return nil, true // not (yet) accepted: unusable as an auth event
		}, stored)
	}
	var evs []*storage.NewEvent
	for _, e := range ordered {
		if err := authrules.Authorize(info.Version, e.p, nil, getEvents, s.getKey); err != nil {
			s.log.Info("backfilled event rejected", logging.EventID(e.id), zap.Error(err))
			continue
		}
		passed[e.id] = true
		ne := &storage.NewEvent{Event: storage.Event{EventID: e.id, RoomID: info.RoomID, Type: e.p.Type, StateKey: e.p.StateKey,
			Sender: e.p.Sender, Depth: e.p.Depth, OriginTS: e.p.OriginServerTS, JSON: e.json}, PrevEvents: e.p.PrevEvents}
		if e.p.Type == event.StateMember.Type {
			ne.Membership = gjson.GetBytes(e.p.Content, "membership").Str
		}
		evs = append(evs, ne)
	}
	if len(evs) == 0 {
		return 0, nil
	}
	slices.Reverse(evs) // newest first: each gets a lower position than the last
	if len(evs) > limit {
		evs = evs[:limit]
	}
	res, err := s.store.StoreBackfill(ctx, info.RoomID, evs, earliest.StateBefore)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range res {
		if r.StreamPos != 0 {
			n++
		}
	}
	s.log.Debug("backfilled", logging.RoomID(info.RoomID), zap.Int("events", n))
	return n, nil
}

package roomserver

import (
	"context"
	"encoding/json"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/internal/eventutil"
	"parley/storage"
)

// WithRelations returns evs with their bundled aggregations (m.thread,
// m.replace, m.reference) added to unsigned.m.relations. Events without any
// are returned as they are; the others are copies.
func (s *Server) WithRelations(ctx context.Context, user id.UserID, device id.DeviceID, evs []*storage.Event) ([]*storage.Event, error) {
	return s.withRelations(ctx, user, device, evs, true)
}

// withRelations is WithRelations; threads=false leaves out m.thread (for a
// thread's latest event, which carries its own edits and references).
func (s *Server) withRelations(ctx context.Context, user id.UserID, device id.DeviceID, evs []*storage.Event, threads bool) ([]*storage.Event, error) {
	if len(evs) == 0 {
		return evs, nil
	}
	aggs, err := s.store.Aggregations(ctx, user, evs)
	if err != nil || len(aggs) == 0 {
		return evs, err
	}
	var latestIDs []id.EventID
	for _, ag := range aggs {
		if ag.ThreadLatest != "" && threads {
			latestIDs = append(latestIDs, ag.ThreadLatest)
		}
	}
	latest := map[id.EventID]*storage.Event{}
	if len(latestIDs) > 0 {
		les, err := s.store.GetEvents(ctx, latestIDs)
		if err != nil {
			return nil, err
		}
		// A thread's latest event is shown only to users who may see it (a
		// user who left must not learn of replies sent since).
		vis := map[id.RoomID]*Visibility{}
		for _, e := range les {
			v, ok := vis[e.RoomID]
			if !ok {
				if v, err = s.NewVisibility(ctx, user, e.RoomID); err != nil {
					return nil, err
				}
				vis[e.RoomID] = v
			}
			if !v.CanSee(e) {
				continue
			}
			shown, err := s.HideErased(ctx, v, e.RoomID, []*storage.Event{e})
			if err != nil {
				return nil, err
			}
			if shown, err = s.withRelations(ctx, user, device, shown, false); err != nil {
				return nil, err
			}
			latest[e.EventID] = shown[0]
		}
	}
	now := time.Now().UnixMilli()
	out := make([]*storage.Event, len(evs))
	for i, ev := range evs {
		out[i] = ev
		ag := aggs[ev.EventID]
		if ag == nil {
			continue
		}
		rel := map[string]any{}
		if le := latest[ag.ThreadLatest]; ag.ThreadCount > 0 && le != nil {
			rel["m.thread"] = map[string]any{
				"latest_event": json.RawMessage(clientEvent(user, device, le, now)), "count": ag.ThreadCount,
				"current_user_participated": ag.ThreadParticipated,
			}
		}
		if ag.Replace != nil && !ev.Redacted {
			rel["m.replace"] = map[string]any{"event_id": ag.Replace.EventID, "origin_server_ts": ag.Replace.OriginTS, "sender": ag.Replace.Sender}
		}
		if len(ag.References) > 0 {
			chunk := make([]map[string]any, len(ag.References))
			for j, ref := range ag.References {
				chunk[j] = map[string]any{"event_id": ref}
			}
			rel["m.reference"] = map[string]any{"chunk": chunk}
		}
		if len(rel) == 0 {
			continue
		}
		unsigned := map[string]json.RawMessage{}
		if len(ev.Unsigned) > 0 {
			if err := json.Unmarshal(ev.Unsigned, &unsigned); err != nil {
				return nil, err
			}
		}
		b, err := json.Marshal(rel)
		if err != nil {
			return nil, err
		}
		unsigned["m.relations"] = b
		c := *ev
		if c.Unsigned, err = json.Marshal(unsigned); err != nil {
			return nil, err
		}
		out[i] = &c
	}
	return out, nil
}

// clientEvent formats a stored event for a client; transaction_id goes only to the sending device.
func clientEvent(user id.UserID, device id.DeviceID, ev *storage.Event, now int64) []byte {
	in := eventutil.ClientInput{PDU: ev.JSON, EventID: string(ev.EventID), RoomID: string(ev.RoomID), Unsigned: ev.Unsigned, NowMS: now}
	if ev.TxnID != "" && ev.Sender == user && ev.DeviceID == device {
		in.TxnID = ev.TxnID
	}
	return eventutil.ClientEvent(make([]byte, 0, len(ev.JSON)), in)
}

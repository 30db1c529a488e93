package clientapi

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// recursionDepth is how deep /relations?recurse=true follows relations.
const recursionDepth = 3

// relations handles GET /v1/rooms/{roomID}/relations/{eventID}[/{relType}[/{eventType}]].
func (a *API) relations(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	req := storage.RelationsQuery{
		RoomID: roomID, EventID: id.EventID(httputil.PathVar(r, "eventID")),
		RelType: httputil.PathVar(r, "relType"), EventType: httputil.PathVar(r, "eventType"),
		Backwards: true, Depth: 1, Hi: math.MaxInt64,
	}
	switch q.Get("dir") {
	case "", "b":
	case "f":
		req.Backwards = false
	default:
		return httputil.InvalidParam("dir must be 'f' or 'b'")
	}
	switch q.Get("recurse") {
	case "", "false":
	case "true":
		req.Depth = recursionDepth
	default:
		return httputil.InvalidParam("recurse must be a boolean")
	}
	if req.Limit, err = parseLimit(r, 5); err != nil {
		return err
	}
	req.Limit = min(req.Limit, 1000)
	from, to := optPos(q.Get("from")), optPos(q.Get("to"))
	for _, p := range []*posParam{from, to} {
		if p.err != nil {
			return httputil.InvalidParam("%v", p.err)
		}
	}
	if req.Backwards {
		if from.set {
			req.Hi = from.pos
		}
		if to.set {
			req.Lo = to.pos
		}
	} else {
		if from.set {
			req.Lo = from.pos
		}
		if to.set {
			req.Hi = to.pos
		}
	}
	res, err := a.rooms.Relations(r.Context(), dev.UserID, req)
	if err != nil {
		return roomError(err)
	}
	evs, err := a.withRelations(r.Context(), dev, res.Events)
	if err != nil {
		return err
	}
	resp := map[string]any{"chunk": clientEvents(dev, evs)}
	if res.Next > 0 {
		resp["next_batch"] = formatPos(res.Next)
	}
	if from.set {
		resp["prev_batch"] = q.Get("from")
	}
	if req.Depth > 1 {
		resp["recursion_depth"] = req.Depth
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

// threads handles GET /v1/rooms/{roomID}/threads.
func (a *API) threads(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	participated := false
	switch q.Get("include") {
	case "", "all":
	case "participated":
		participated = true
	default:
		return httputil.InvalidParam("include must be 'all' or 'participated'")
	}
	limit, err := parseLimit(r, 10)
	if err != nil {
		return err
	}
	limit = min(limit, 100)
	from := optPos(q.Get("from"))
	if from.err != nil {
		return httputil.InvalidParam("%v", from.err)
	}
	res, err := a.rooms.Threads(r.Context(), dev.UserID, roomID, participated, from.pos, limit)
	if err != nil {
		return roomError(err)
	}
	evs, err := a.withRelations(r.Context(), dev, res.Events)
	if err != nil {
		return err
	}
	resp := map[string]any{"chunk": clientEvents(dev, evs)}
	if res.Next > 0 {
		resp["next_batch"] = formatPos(res.Next)
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

type posParam struct {
	pos int64
	set bool
	err error
}

func optPos(tok string) *posParam {
	if tok == "" {
		return &posParam{}
	}
	pos, err := parsePos(tok)
	return &posParam{pos: pos, set: err == nil, err: err}
}

// withRelations returns evs with their bundled aggregations (m.thread,
// m.replace, m.reference) added to unsigned.m.relations. Events without any
// are returned as they are; the others are copies.
func (a *API) withRelations(ctx context.Context, dev *authn.Device, evs []*storage.Event) ([]*storage.Event, error) {
	if len(evs) == 0 {
		return evs, nil
	}
	store := a.rooms.Store().(storage.RelationStore)
	aggs, err := store.Aggregations(ctx, dev.UserID, evs)
	if err != nil || len(aggs) == 0 {
		return evs, err
	}
	var latestIDs []id.EventID
	for _, ag := range aggs {
		if ag.ThreadLatest != "" {
			latestIDs = append(latestIDs, ag.ThreadLatest)
		}
	}
	latest := map[id.EventID]*storage.Event{}
	if len(latestIDs) > 0 {
		les, err := a.rooms.Store().GetEvents(ctx, latestIDs)
		if err != nil {
			return nil, err
		}
		for _, e := range les {
			latest[e.EventID] = e
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
				"latest_event": clientEvent(dev, le, now), "count": ag.ThreadCount,
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

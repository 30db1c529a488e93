package clientapi

import (
	"context"
	"math"
	"net/http"

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
	if q.Has("recurse") {
		// Mandatory when the client supplied recurse, absent otherwise. The
		// depth reached is at most req.Depth.
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

// withRelations adds bundled aggregations to evs (see roomserver.WithRelations).
func (a *API) withRelations(ctx context.Context, dev *authn.Device, evs []*storage.Event) ([]*storage.Event, error) {
	return a.rooms.WithRelations(ctx, dev.UserID, dev.DeviceID, evs)
}

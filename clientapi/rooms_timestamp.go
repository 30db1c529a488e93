package clientapi

import (
	"net/http"
	"strconv"

	"parley/internal/authn"
	"parley/internal/httputil"
)

// timestampToEvent handles GET /v1/rooms/{roomID}/timestamp_to_event.
func (a *API) timestampToEvent(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if !q.Has("ts") {
		return httputil.MissingParam("ts is required")
	}
	ts, err := strconv.ParseInt(q.Get("ts"), 10, 64)
	if err != nil {
		return httputil.InvalidParam("ts must be an integer")
	}
	dir := q.Get("dir")
	switch {
	case !q.Has("dir"):
		return httputil.MissingParam("dir is required")
	case dir != "f" && dir != "b":
		return httputil.InvalidParam("dir must be 'f' or 'b'")
	}
	ev, err := a.rooms.TimestampToEvent(r.Context(), dev.UserID, roomID, ts, dir)
	if err != nil {
		return roomError(err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"event_id": ev.EventID, "origin_server_ts": ev.OriginTS})
}

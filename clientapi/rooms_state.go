package clientapi

import (
	"net/http"

	"github.com/tidwall/gjson"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// getState handles GET /rooms/{roomID}/state.
func (a *API) getState(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	evs, err := a.rooms.RoomState(r.Context(), dev.UserID, roomID)
	if err != nil {
		return roomError(err)
	}
	return httputil.WriteJSON(w, http.StatusOK, clientEvents(dev, evs))
}

// getStateEvent handles GET /rooms/{roomID}/state/{eventType}/{stateKey}: the
// content, or the whole event with ?format=event.
func (a *API) getStateEvent(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	format := r.URL.Query().Get("format")
	if format != "" && format != "content" && format != "event" {
		return httputil.InvalidParam("format must be content or event")
	}
	ev, err := a.rooms.StateEvent(r.Context(), dev.UserID, roomID, httputil.PathVar(r, "eventType"), httputil.PathVar(r, "stateKey"))
	if err != nil {
		return roomError(err)
	}
	if format == "event" {
		return httputil.WriteRawJSON(w, http.StatusOK, clientEvents(dev, []*storage.Event{ev})[0])
	}
	content := gjson.GetBytes(ev.JSON, "content").Raw
	if content == "" {
		content = "{}"
	}
	return httputil.WriteRawJSON(w, http.StatusOK, []byte(content))
}

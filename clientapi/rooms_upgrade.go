package clientapi

import (
	"net/http"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/roomserver"
)

// upgradeRoom handles POST /rooms/{roomID}/upgrade.
func (a *API) upgradeRoom(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	var body struct {
		NewVersion         *string     `json:"new_version"`
		AdditionalCreators []id.UserID `json:"additional_creators"`
	}
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return err
	}
	if body.NewVersion == nil {
		return httputil.MissingParam("new_version is required")
	}
	for _, u := range body.AdditionalCreators {
		if _, _, err := u.ParseAndValidateRelaxed(); err != nil {
			return httputil.InvalidParam("invalid user ID %q in additional_creators", u)
		}
	}
	newRoom, err := a.rooms.UpgradeRoom(r.Context(), roomserver.UpgradeRequest{
		RoomID: roomID, User: dev.UserID, NewVersion: id.RoomVersion(*body.NewVersion), AdditionalCreators: body.AdditionalCreators,
	})
	if err != nil {
		return roomError(err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"replacement_room": newRoom})
}

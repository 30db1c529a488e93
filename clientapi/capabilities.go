package clientapi

import (
	"net/http"

	"parley/internal/authn"
	"parley/internal/httputil"
)

// capabilities handles GET /capabilities.
func (a *API) capabilities(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	def, versions := a.rooms.RoomVersions()
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{
		"capabilities": map[string]any{
			"m.room_versions": map[string]any{"default": def, "available": versions},
		},
	})
}

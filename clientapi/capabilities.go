package clientapi

import (
	"net/http"

	"parley/internal/authn"
	"parley/internal/httputil"
)

// capabilities handles GET /capabilities.
func (a *API) capabilities(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	enabled := func(b bool) map[string]bool { return map[string]bool{"enabled": b} }
	caps := map[string]any{
		"m.change_password": enabled(true),
		"m.set_displayname": enabled(true),
		"m.set_avatar_url":  enabled(true),
		"m.3pid_changes":    enabled(false),
		"m.get_login_token": enabled(true),
		"m.profile_fields":  enabled(true),
	}
	if a.roomVersions != nil {
		def, available := a.roomVersions()
		caps["m.room_versions"] = map[string]any{"default": def, "available": available}
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"capabilities": caps})
}

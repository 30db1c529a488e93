package clientapi

import (
	"net/http"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
)

// roomSummary handles GET /v1/room_summary/{roomIdOrAlias}. An access token
// is optional: without one only rooms anyone may preview (public or
// knockable join rules, world_readable history) that this server is in are
// described.
func (a *API) roomSummary(w http.ResponseWriter, r *http.Request) error {
	var user id.UserID
	if _, ok := authn.Token(r); ok {
		var dev *authn.Device
		err := authn.Required(a.auth, func(_ http.ResponseWriter, _ *http.Request, d *authn.Device) error {
			dev = d
			return nil
		})(w, r)
		if err != nil {
			return err
		}
		user = dev.UserID
	}
	target := httputil.PathVar(r, "roomIDOrAlias")
	if _, _, server := id.ParseCommonIdentifier(target); user == "" && len(target) > 0 && target[0] == '#' && server != a.cfg.ServerName {
		// Anonymous callers never cost this server a federation request.
		return httputil.NotFound("Room not found")
	}
	roomID, via, err := a.resolveTarget(r.Context(), target, r.URL.Query()["via"])
	if err != nil {
		return err
	}
	if _, _, server := id.ParseCommonIdentifier(string(roomID)); server != "" && server != a.cfg.ServerName {
		via = append(via, server)
	}
	p, err := a.rooms.PreviewRoom(r.Context(), user, roomID, via)
	if err != nil {
		return roomError(err)
	}
	out := p.FullJSON()
	if p.Membership != "" {
		out["membership"] = p.Membership
	}
	return httputil.WriteJSON(w, http.StatusOK, out)
}

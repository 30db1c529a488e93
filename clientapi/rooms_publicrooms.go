package clientapi

import (
	"net/http"
	"strconv"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/roomserver"
)

// getRoomVisibility handles GET /directory/list/room/{roomID}.
func (a *API) getRoomVisibility(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	public, err := a.rooms.RoomVisibility(r.Context(), roomID)
	if err != nil {
		return roomError(err)
	}
	vis := "private"
	if public {
		vis = "public"
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"visibility": vis})
}

// putRoomVisibility handles PUT /directory/list/room/{roomID}.
func (a *API) putRoomVisibility(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	public, err := decodeVisibility(r, false)
	if err != nil {
		return err
	}
	if err := a.rooms.SetRoomVisibility(r.Context(), dev.UserID, dev.IsAdmin, roomID, public); err != nil {
		return roomError(err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{})
}

// decodeVisibility reads a directory visibility body ({"visibility":
// "public"|"private"}); a missing visibility is public, or 400
// M_MISSING_PARAM when required.
func decodeVisibility(r *http.Request, required bool) (public bool, err error) {
	var body struct {
		Visibility *string `json:"visibility"`
	}
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return false, err
	}
	switch {
	case body.Visibility == nil && required:
		return false, httputil.MissingParam("visibility is required")
	case body.Visibility == nil || *body.Visibility == "public":
		return true, nil
	case *body.Visibility == "private":
		return false, nil
	}
	return false, httputil.InvalidParam("visibility must be 'public' or 'private'")
}

// publicRoomsRequest is the body of POST /publicRooms (and the query of GET).
type publicRoomsRequest struct {
	Limit  *int   `json:"limit"`
	Since  string `json:"since"`
	Filter struct {
		GenericSearchTerm string     `json:"generic_search_term"`
		RoomTypes         *[]*string `json:"room_types"`
	} `json:"filter"`
	IncludeAllNetworks   bool   `json:"include_all_networks"`
	ThirdPartyInstanceID string `json:"third_party_instance_id"`
}

// getPublicRooms handles GET /publicRooms.
func (a *API) getPublicRooms(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var req publicRoomsRequest
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return httputil.InvalidParam("limit must be a non-negative integer")
		}
		req.Limit = &n
	}
	req.Since = q.Get("since")
	switch q.Get("include_all_networks") {
	case "", "false":
	case "true":
		req.IncludeAllNetworks = true
	default:
		return httputil.InvalidParam("include_all_networks must be true or false")
	}
	req.ThirdPartyInstanceID = q.Get("third_party_instance_id")
	if server := q.Get("server"); server != "" && server != a.cfg.ServerName {
		// Asking another server costs this one a federation request: only
		// for users of this server, as POST.
		return authn.Required(a.auth, func(w http.ResponseWriter, r *http.Request, _ *authn.Device) error {
			return a.publicRooms(w, r, server, &req)
		})(w, r)
	}
	return a.publicRooms(w, r, "", &req)
}

// postPublicRooms handles POST /publicRooms.
func (a *API) postPublicRooms(w http.ResponseWriter, r *http.Request, _ *authn.Device) error {
	var req publicRoomsRequest
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.Limit != nil && *req.Limit < 0 {
		return httputil.InvalidParam("limit must be a non-negative integer")
	}
	return a.publicRooms(w, r, r.URL.Query().Get("server"), &req)
}

// publicRooms answers from the local room directory, or asks server's over
// federation when server names another server.
func (a *API) publicRooms(w http.ResponseWriter, r *http.Request, server string, req *publicRoomsRequest) error {
	q := roomserver.PublicRoomsQuery{Since: req.Since, SearchTerm: req.Filter.GenericSearchTerm, RoomTypes: req.Filter.RoomTypes,
		ThirdPartyInstanceID: req.ThirdPartyInstanceID, IncludeAllNetworks: req.IncludeAllNetworks}
	if req.IncludeAllNetworks {
		q.ThirdPartyInstanceID = ""
	}
	if req.Limit != nil {
		q.Limit = *req.Limit
	}
	if server != "" && server != a.cfg.ServerName {
		return a.remotePublicRooms(w, r, server, q, req.IncludeAllNetworks)
	}
	page, err := a.rooms.QueryPublicRooms(r.Context(), q)
	if err != nil {
		return roomError(err)
	}
	return httputil.WriteJSON(w, http.StatusOK, page.JSON())
}

// remotePublicRooms relays a room directory query to another server (GET
// without a filter, POST with one) and passes its answer on.
func (a *API) remotePublicRooms(w http.ResponseWriter, r *http.Request, server string, q roomserver.PublicRoomsQuery, allNetworks bool) error {
	dir, ok := a.remote.(RemoteRoomDirectory)
	if !ok {
		return httputil.NotFound("server %s is not reachable from here", server)
	}
	if !id.ValidateServerName(server) {
		return httputil.InvalidParam("invalid server name %q", server)
	}
	resp, err := dir.PublicRooms(r.Context(), server, q, allNetworks)
	if err != nil {
		a.log.Debug("remote room directory query failed", zap.String("server", server), zap.Error(err))
		return roomError(err)
	}
	return httputil.WriteRawJSON(w, http.StatusOK, resp)
}

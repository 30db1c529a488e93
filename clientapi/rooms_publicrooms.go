package clientapi

import (
	"net/http"
	"strconv"
	"strings"

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
	var body struct {
		Visibility *string `json:"visibility"`
	}
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return err
	}
	public := true // the spec's default
	switch {
	case body.Visibility == nil || *body.Visibility == "public":
	case *body.Visibility == "private":
		public = false
	default:
		return httputil.InvalidParam("visibility must be 'public' or 'private'")
	}
	if err := a.rooms.SetRoomVisibility(r.Context(), dev.UserID, dev.IsAdmin, roomID, public); err != nil {
		return roomError(err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{})
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
	return a.publicRooms(w, r, q.Get("server"), &req)
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

// publicRooms answers from the local room directory. Pagination tokens are
// "p<offset>" into the list ordered by joined members.
func (a *API) publicRooms(w http.ResponseWriter, r *http.Request, server string, req *publicRoomsRequest) error {
	if server != "" && server != a.cfg.ServerName {
		return httputil.Errorf(http.StatusNotImplemented, "M_UNRECOGNIZED", "querying another server's room directory is not supported")
	}
	if req.ThirdPartyInstanceID != "" {
		// No application service networks are bridged here.
		return httputil.WriteJSON(w, http.StatusOK, map[string]any{"chunk": []any{}, "total_room_count_estimate": 0})
	}
	offset := 0
	if req.Since != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(req.Since, "p"))
		if err != nil || n < 0 || !strings.HasPrefix(req.Since, "p") {
			return httputil.InvalidParam("invalid since token")
		}
		offset = n
	}
	all, err := a.rooms.PublicRooms(r.Context())
	if err != nil {
		return err
	}
	term := strings.ToLower(req.Filter.GenericSearchTerm)
	rooms := all[:0]
	for _, s := range all {
		if term != "" && !strings.Contains(strings.ToLower(s.Name), term) && !strings.Contains(strings.ToLower(s.Topic), term) &&
			!strings.Contains(strings.ToLower(s.CanonicalAlias), term) {
			continue
		}
		if req.Filter.RoomTypes != nil && !roomTypeIn(s.RoomType, *req.Filter.RoomTypes) {
			continue
		}
		rooms = append(rooms, s)
	}
	limit := len(rooms)
	if req.Limit != nil && *req.Limit > 0 {
		limit = *req.Limit
	}
	start := min(offset, len(rooms))
	end := min(start+limit, len(rooms))
	chunk := make([]map[string]any, 0, end-start)
	for _, s := range rooms[start:end] {
		chunk = append(chunk, publishedRoom(s))
	}
	resp := map[string]any{"chunk": chunk, "total_room_count_estimate": len(rooms)}
	if end < len(rooms) {
		resp["next_batch"] = "p" + strconv.Itoa(end)
	}
	if start > 0 {
		resp["prev_batch"] = "p" + strconv.Itoa(max(start-limit, 0))
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

func roomTypeIn(t string, types []*string) bool {
	for _, want := range types {
		if (want == nil && t == "") || (want != nil && *want == t) {
			return true
		}
	}
	return false
}

// publishedRoom is a PublishedRoomsChunk (also the base of a hierarchy room).
func publishedRoom(s *roomserver.RoomSummary) map[string]any {
	out := map[string]any{
		"room_id": s.RoomID, "num_joined_members": s.NumJoinedMembers,
		"world_readable": s.WorldReadable, "guest_can_join": s.GuestCanJoin, "join_rule": s.JoinRule,
	}
	for k, v := range map[string]string{"name": s.Name, "topic": s.Topic, "canonical_alias": s.CanonicalAlias, "avatar_url": s.AvatarURL, "room_type": s.RoomType} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

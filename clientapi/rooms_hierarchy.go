package clientapi

import (
	"fmt"
	"net/http"
	"strconv"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/roomserver"
)

const (
	hierarchyDefaultLimit = 50
	hierarchyMaxLimit     = 100
	// hierarchyMaxDepth bounds max_depth (and is its default).
	hierarchyMaxDepth = 50
)

// hierarchy handles GET /v1/rooms/{roomID}/hierarchy. Pagination tokens are
// "<offset>_<max_depth>_<suggested_only>" into the breadth-first walk.
func (a *API) hierarchy(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	req := roomserver.HierarchyRequest{User: dev.UserID, RoomID: roomID, MaxDepth: hierarchyMaxDepth}
	switch q.Get("suggested_only") {
	case "", "false":
	case "true":
		req.SuggestedOnly = true
	default:
		return httputil.InvalidParam("suggested_only must be a boolean")
	}
	if v := q.Get("max_depth"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return httputil.InvalidParam("max_depth must be a non-negative integer")
		}
		req.MaxDepth = min(n, hierarchyMaxDepth)
	}
	limit := hierarchyDefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return httputil.InvalidParam("limit must be a positive integer")
		}
		limit = min(n, hierarchyMaxLimit)
	}
	offset := 0
	if from := q.Get("from"); from != "" {
		var depth int
		var suggested bool
		if _, err := fmt.Sscanf(from, "%d_%d_%t", &offset, &depth, &suggested); err != nil || offset < 0 {
			return httputil.InvalidParam("unknown from token")
		}
		if depth != req.MaxDepth || suggested != req.SuggestedOnly {
			return httputil.InvalidParam("suggested_only and max_depth cannot change on paginated requests")
		}
	}
	rooms, err := a.rooms.Hierarchy(r.Context(), req)
	if err != nil {
		return roomError(err)
	}
	start := min(offset, len(rooms))
	end := min(start+limit, len(rooms))
	out := make([]map[string]any, 0, end-start)
	for _, hr := range rooms[start:end] {
		out = append(out, hr.JSON())
	}
	resp := map[string]any{"rooms": out}
	if end < len(rooms) {
		resp["next_batch"] = fmt.Sprintf("%d_%d_%t", end, req.MaxDepth, req.SuggestedOnly)
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

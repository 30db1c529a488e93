package searchapi

import (
	"net/http"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
)

type directoryResult struct {
	UserID      id.UserID `json:"user_id"`
	DisplayName string    `json:"display_name,omitempty"`
	AvatarURL   string    `json:"avatar_url,omitempty"`
}

// userDirectory handles POST /user_directory/search: users who share a room
// with the requester or are in a public room (every active local user with
// user_directory.search_all_users), matched on user ID and display name.
func (a *API) userDirectory(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req struct {
		SearchTerm *string `json:"search_term"`
		Limit      *int    `json:"limit"`
	}
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.SearchTerm == nil {
		return httputil.MissingParam("search_term is required")
	}
	limit := 10
	if req.Limit != nil {
		if *req.Limit < 0 {
			return httputil.InvalidParam("limit must not be negative")
		}
		limit = min(*req.Limit, 1000)
	}
	local := ""
	if a.cfg.UserDirectory.SearchAllUsers {
		local = a.cfg.ServerName
	}
	users, limited, err := a.store.SearchUserDirectory(r.Context(), dev.UserID, *req.SearchTerm, limit, local)
	if err != nil {
		return err
	}
	out := make([]directoryResult, len(users))
	for i, u := range users {
		out[i] = directoryResult{UserID: u.UserID, DisplayName: u.DisplayName, AvatarURL: u.AvatarURL}
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"limited": limited, "results": out})
}

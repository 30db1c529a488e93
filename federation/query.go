package federation

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"maunium.net/go/mautrix/id"

	"parley/internal/httputil"
	"parley/storage"
)

// queryProfile handles GET /_matrix/federation/v1/query/profile.
func (a *API) queryProfile(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	userID := id.UserID(q.Get("user_id"))
	if userID == "" {
		return httputil.MissingParam("user_id is required")
	}
	if _, _, err := userID.ParseAndValidateRelaxed(); err != nil {
		return httputil.InvalidParam("invalid user_id")
	}
	if userID.Homeserver() != a.serverName {
		return httputil.InvalidParam("user %s is not local to this server", userID)
	}
	field := q.Get("field")
	prof, err := a.d.Store.GetProfile(r.Context(), userID)
	if errors.Is(err, storage.ErrNotFound) && a.d.AppServices != nil && a.d.AppServices.EnsureAppServiceUser(r.Context(), userID) {
		prof, err = a.d.Store.GetProfile(r.Context(), userID)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("user not found")
	} else if err != nil {
		return err
	}
	out := map[string]json.RawMessage{}
	for k, v := range prof {
		if field == "" || field == k {
			out[k] = v
		}
	}
	if field != "" && len(out) == 0 {
		return httputil.NotFound("profile field %s not set", field)
	}
	return httputil.WriteJSON(w, http.StatusOK, out)
}

// queryDirectory handles GET /_matrix/federation/v1/query/directory.
func (a *API) queryDirectory(w http.ResponseWriter, r *http.Request) error {
	alias := id.RoomAlias(r.URL.Query().Get("room_alias"))
	if alias == "" {
		return httputil.MissingParam("room_alias is required")
	}
	if sigil, local, server := id.ParseCommonIdentifier(alias); sigil != '#' || local == "" || server == "" {
		return httputil.InvalidParam("invalid room alias")
	}
	roomID, _, err := a.d.Store.ResolveAlias(r.Context(), alias)
	if errors.Is(err, storage.ErrNotFound) && a.d.AppServices != nil {
		if rid, ok := a.d.AppServices.ResolveAppServiceAlias(r.Context(), alias); ok {
			roomID, err = rid, nil
		}
	}
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("room alias %s not found", alias)
	} else if err != nil {
		return err
	}
	servers, err := a.roomServers(r, roomID)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"room_id": roomID, "servers": servers})
}

// roomServers lists the servers with joined members in a room, this server first.
func (a *API) roomServers(r *http.Request, roomID id.RoomID) ([]string, error) {
	ms, err := a.d.Store.RoomMemberships(r.Context(), roomID)
	if err != nil {
		return nil, err
	}
	servers := []string{a.serverName}
	for _, m := range ms {
		if m.Membership == "join" && !slices.Contains(servers, m.UserID.Homeserver()) {
			servers = append(servers, m.UserID.Homeserver())
		}
	}
	return servers, nil
}

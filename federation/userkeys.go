package federation

import (
	"context"
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix/id"

	"parley/internal/httputil"
)

// localUser checks that userID is a valid user of this server.
func (a *API) localUser(userID id.UserID) bool {
	_, server, err := userID.Parse()
	return err == nil && server == a.serverName
}

// userKeys reads local users' keys as other servers see them: through
// Deps.UserKeys (signatures merged), else as stored.
func (a *API) userKeys(ctx context.Context, query map[id.UserID][]id.DeviceID) (map[id.UserID]map[id.DeviceID]json.RawMessage, map[id.UserID]map[string]json.RawMessage, error) {
	if a.d.UserKeys != nil {
		return a.d.UserKeys.PublishedKeys(ctx, query)
	}
	keys, err := a.d.Store.DeviceKeys(ctx, query)
	if err != nil {
		return nil, nil, err
	}
	users := make([]id.UserID, 0, len(query))
	for u := range query {
		users = append(users, u)
	}
	cs, err := a.d.Store.CrossSigningKeys(ctx, users)
	if err != nil {
		return nil, nil, err
	}
	devices := map[id.UserID]map[id.DeviceID]json.RawMessage{}
	for u := range query {
		devices[u] = map[id.DeviceID]json.RawMessage{}
		for d, k := range keys[u] {
			devices[u][d] = k.JSON
		}
	}
	return devices, cs, nil
}

// userDevices handles GET /_matrix/federation/v1/user/devices/{userID}.
func (a *API) userDevices(w http.ResponseWriter, r *http.Request) error {
	userID := id.UserID(httputil.PathVar(r, "userID"))
	if !a.localUser(userID) {
		return httputil.NotFound("user %s is not local to this server", userID)
	}
	ctx := r.Context()
	keys, cs, err := a.userKeys(ctx, map[id.UserID][]id.DeviceID{userID: {}})
	if err != nil {
		return err
	}
	devices, err := a.d.Store.ListDevices(ctx, userID)
	if err != nil {
		return err
	}
	pos, err := a.d.Store.DeviceListPosition(ctx)
	if err != nil {
		return err
	}
	list := make([]map[string]any, 0, len(devices))
	for _, d := range devices {
		entry := map[string]any{"device_id": d.DeviceID}
		if d.DisplayName != "" {
			entry["device_display_name"] = d.DisplayName
		}
		if k, ok := keys[userID][d.DeviceID]; ok {
			entry["keys"] = k
		}
		list = append(list, entry)
	}
	resp := map[string]any{"user_id": userID, "stream_id": pos, "devices": list}
	if k, ok := cs[userID]["master"]; ok {
		resp["master_key"] = k
	}
	if k, ok := cs[userID]["self_signing"]; ok {
		resp["self_signing_key"] = k
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

// userKeysQuery handles POST /_matrix/federation/v1/user/keys/query.
func (a *API) userKeysQuery(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		DeviceKeys map[id.UserID][]id.DeviceID `json:"device_keys"`
	}
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.DeviceKeys == nil {
		return httputil.MissingParam("device_keys is required")
	}
	query := map[id.UserID][]id.DeviceID{}
	for u, devs := range req.DeviceKeys {
		if a.localUser(u) {
			query[u] = devs
		}
	}
	deviceKeys, cs, err := a.userKeys(r.Context(), query)
	if err != nil {
		return err
	}
	master := map[id.UserID]json.RawMessage{}
	selfSigning := map[id.UserID]json.RawMessage{}
	for u := range query {
		if k, ok := cs[u]["master"]; ok {
			master[u] = k
		}
		if k, ok := cs[u]["self_signing"]; ok {
			selfSigning[u] = k
		}
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"device_keys": deviceKeys, "master_keys": master, "self_signing_keys": selfSigning})
}

// userKeysClaim handles POST /_matrix/federation/v1/user/keys/claim.
func (a *API) userKeysClaim(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		OneTimeKeys map[id.UserID]map[id.DeviceID]string `json:"one_time_keys"`
	}
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.OneTimeKeys == nil {
		return httputil.MissingParam("one_time_keys is required")
	}
	query := map[id.UserID]map[id.DeviceID]string{}
	for u, devs := range req.OneTimeKeys {
		if a.localUser(u) {
			query[u] = devs
		}
	}
	claimed, err := a.d.Store.ClaimKeys(r.Context(), query)
	if err != nil {
		return err
	}
	out := map[id.UserID]map[id.DeviceID]map[string]json.RawMessage{}
	for u, devs := range claimed {
		out[u] = map[id.DeviceID]map[string]json.RawMessage{}
		for d, k := range devs {
			out[u][d] = map[string]json.RawMessage{k.KeyID: k.Key}
		}
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"one_time_keys": out})
}

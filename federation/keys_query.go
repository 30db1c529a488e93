package federation

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/internal/httputil"
)

// keysQueryResponse is the notary response: server_keys is always present.
type keysQueryResponse struct {
	ServerKeys []json.RawMessage `json:"server_keys"`
}

// queryKeysGet handles GET /_matrix/key/v2/query/{serverName}.
func (a *API) queryKeysGet(w http.ResponseWriter, r *http.Request) error {
	serverName := httputil.PathVar(r, "serverName")
	if !id.ValidateServerName(serverName) {
		return httputil.InvalidParam("%q is not a server name", serverName)
	}
	minValid := time.Now()
	if v := r.URL.Query().Get("minimum_valid_until_ts"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return httputil.InvalidParam("minimum_valid_until_ts must be an integer")
		}
		minValid = time.UnixMilli(ms)
	}
	resp := keysQueryResponse{ServerKeys: []json.RawMessage{}}
	if k := a.notarise(r.Context(), serverName, minValid); k != nil {
		resp.ServerKeys = append(resp.ServerKeys, k)
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

// queryKeysPost handles POST /_matrix/key/v2/query.
func (a *API) queryKeysPost(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		ServerKeys map[string]map[string]struct {
			MinimumValidUntilTS *int64 `json:"minimum_valid_until_ts"`
		} `json:"server_keys"`
	}
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.ServerKeys == nil {
		return httputil.MissingParam("server_keys is required")
	}
	resp := keysQueryResponse{ServerKeys: []json.RawMessage{}}
	for serverName, criteria := range req.ServerKeys {
		if !id.ValidateServerName(serverName) {
			continue
		}
		minValid := time.Now()
		for _, c := range criteria {
			if c.MinimumValidUntilTS != nil && time.UnixMilli(*c.MinimumValidUntilTS).After(minValid) {
				minValid = time.UnixMilli(*c.MinimumValidUntilTS)
			}
		}
		if k := a.notarise(r.Context(), serverName, minValid); k != nil {
			resp.ServerKeys = append(resp.ServerKeys, k)
		}
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

// notarise returns serverName's key response with this server's signature
// added, or nil when no keys are known and the server cannot be reached.
func (a *API) notarise(ctx context.Context, serverName string, minValid time.Time) json.RawMessage {
	skr, err := a.d.Keys.Fetch(ctx, serverName, minValid)
	if err != nil || skr == nil {
		return nil
	}
	var obj map[string]any
	if err := json.Unmarshal(skr.Raw, &obj); err != nil {
		return nil
	}
	sig, err := a.d.Key.SignJSON(obj)
	if err != nil {
		return nil
	}
	sigs, _ := obj["signatures"].(map[string]any)
	if sigs == nil {
		sigs = map[string]any{}
	}
	own, _ := sigs[a.serverName].(map[string]any)
	if own == nil {
		own = map[string]any{}
	}
	own[string(a.d.Key.ID)] = sig
	sigs[a.serverName] = own
	obj["signatures"] = sigs
	out, err := json.Marshal(obj)
	if err != nil {
		return nil
	}
	return out
}

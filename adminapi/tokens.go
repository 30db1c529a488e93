package adminapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// Creating and reading single registration tokens is in clientapi/admin_tokens.go;
// listing, updating and deleting are here.

type tokenJSON struct {
	Token       string `json:"token"`
	UsesAllowed *int   `json:"uses_allowed"`
	Pending     int    `json:"pending"`
	Completed   int    `json:"completed"`
	ExpiryTime  *int64 `json:"expiry_time"`
}

func toTokenJSON(t *storage.RegistrationToken) tokenJSON {
	return tokenJSON{Token: t.Token, UsesAllowed: t.UsesAllowed, Pending: t.Pending, Completed: t.Completed, ExpiryTime: t.ExpiryTime}
}

// listTokens handles GET /_synapse/admin/v1/registration_tokens[?valid=true|false].
func (a *API) listTokens(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	filter := r.URL.Query().Get("valid")
	if filter != "" && filter != "true" && filter != "false" {
		return httputil.InvalidParam("valid must be true or false")
	}
	ts, err := a.store.ListRegistrationTokens(r.Context())
	if err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	out := []tokenJSON{}
	for i := range ts {
		if filter != "" && ts[i].Valid(now) != (filter == "true") {
			continue
		}
		out = append(out, toTokenJSON(&ts[i]))
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"registration_tokens": out})
}

// updateToken handles PUT /_synapse/admin/v1/registration_tokens/{token}.
func (a *API) updateToken(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var body map[string]json.RawMessage
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return err
	}
	var uses *int
	var expiry *int64
	rawUses, setUses := body["uses_allowed"]
	if setUses && string(rawUses) != "null" {
		var n int
		if err := json.Unmarshal(rawUses, &n); err != nil || n < 0 {
			return httputil.InvalidParam("uses_allowed must be a non-negative integer or null")
		}
		uses = &n
	}
	rawExp, setExpiry := body["expiry_time"]
	if setExpiry && string(rawExp) != "null" {
		var n int64
		if err := json.Unmarshal(rawExp, &n); err != nil || n < time.Now().UnixMilli() {
			return httputil.InvalidParam("expiry_time must be an integer in the future or null")
		}
		expiry = &n
	}
	t, err := a.store.UpdateRegistrationToken(r.Context(), httputil.PathVar(r, "token"), setUses, uses, setExpiry, expiry)
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("No such registration token")
	} else if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, toTokenJSON(t))
}

// deleteToken handles DELETE /_synapse/admin/v1/registration_tokens/{token}.
func (a *API) deleteToken(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if err := a.store.DeleteRegistrationToken(r.Context(), httputil.PathVar(r, "token")); errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("No such registration token")
	} else if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{})
}

package clientapi

import (
	"net/http"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
)

// openIDLifetime is how long an OpenID token stays valid.
const openIDLifetime = time.Hour

// requestOpenIDToken handles POST /user/{userId}/openid/request_token: a
// token another service exchanges, through the federation API's
// /openid/userinfo, for the user's ID (and for nothing else).
func (a *API) requestOpenIDToken(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if user := id.UserID(httputil.PathVar(r, "userId")); user != dev.UserID {
		return httputil.Forbidden("cannot request an OpenID token for another user")
	}
	var body map[string]any
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return err
	}
	tok := NewToken("oid_")
	now := time.Now()
	if err := a.store.CreateOpenIDToken(r.Context(), HashToken(tok), dev.UserID, now.UnixMilli(), now.Add(openIDLifetime).UnixMilli()); err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{
		"access_token":       tok,
		"token_type":         "Bearer",
		"matrix_server_name": a.cfg.ServerName,
		"expires_in":         int(openIDLifetime.Seconds()),
	})
}

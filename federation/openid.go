package federation

import (
	"crypto/sha256"
	"errors"
	"net/http"
	"time"

	"parley/internal/httputil"
	"parley/storage"
)

// openIDUserInfo handles GET /_matrix/federation/v1/openid/userinfo: the
// owner of an OpenID token (POST /user/{userId}/openid/request_token). The
// request is not signed: the token is its authentication.
func (a *API) openIDUserInfo(w http.ResponseWriter, r *http.Request) error {
	tok := r.URL.Query().Get("access_token")
	if tok == "" {
		return httputil.Errorf(http.StatusUnauthorized, httputil.CodeMissingToken, "missing access_token")
	}
	h := sha256.Sum256([]byte(tok))
	user, err := a.d.Store.OpenIDTokenUser(r.Context(), h[:], time.Now().UnixMilli())
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.Errorf(http.StatusUnauthorized, httputil.CodeUnknownToken, "Access token unknown or expired")
	} else if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]string{"sub": string(user)})
}

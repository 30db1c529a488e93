package clientapi

import (
	"crypto/rand"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// registerAdminTokenRoutes attaches the Synapse-compatible registration-token
// admin API (server admins only).
func (a *API) registerAdminTokenRoutes(root *mux.Router) {
	a.authed(root, "/_synapse/admin/v1/registration_tokens/new", "admin_new_registration_token", adminOnly(a.adminNewRegistrationToken), http.MethodPost)
	a.authed(root, "/_synapse/admin/v1/registration_tokens/{token}", "admin_get_registration_token", adminOnly(a.adminGetRegistrationToken), http.MethodGet)
}

// adminOnly wraps h so that only server admins may call it.
func adminOnly(h authn.Handler) authn.Handler {
	return func(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
		if !dev.IsAdmin {
			return httputil.Forbidden("You are not a server admin")
		}
		return h(w, r, dev)
	}
}

// tokenJSON is a registration token as the admin API shows it.
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

// tokenAlphabet is what generated tokens and client-chosen tokens consist of.
const tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"

// adminNewRegistrationToken handles POST /_synapse/admin/v1/registration_tokens/new.
func (a *API) adminNewRegistrationToken(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req struct {
		Token       string `json:"token"`
		UsesAllowed *int   `json:"uses_allowed"`
		ExpiryTime  *int64 `json:"expiry_time"`
		Length      *int   `json:"length"`
	}
	if err := decodeOptionalObject(r, &req); err != nil {
		return err
	}
	if req.UsesAllowed != nil && *req.UsesAllowed < 0 {
		return httputil.InvalidParam("uses_allowed must be a non-negative integer or null")
	}
	if req.ExpiryTime != nil && *req.ExpiryTime < time.Now().UnixMilli() {
		return httputil.InvalidParam("expiry_time must not be in the past")
	}
	if req.Token != "" {
		if len(req.Token) > 64 {
			return httputil.InvalidParam("token must be at most 64 characters")
		}
		for _, c := range req.Token {
			if !strings.ContainsRune(tokenAlphabet, c) {
				return httputil.InvalidParam("token may only contain A-Z a-z 0-9 . _ ~ -")
			}
		}
	} else {
		n := 16
		if req.Length != nil {
			n = *req.Length
		}
		if n < 1 || n > 64 {
			return httputil.InvalidParam("length must be between 1 and 64")
		}
		b := make([]byte, n)
		_, _ = rand.Read(b)
		for i := range b {
			b[i] = tokenAlphabet[int(b[i])%62] // letters and digits only
		}
		req.Token = string(b)
	}
	t := storage.RegistrationToken{Token: req.Token, UsesAllowed: req.UsesAllowed, ExpiryTime: req.ExpiryTime}
	err := a.store.CreateRegistrationToken(r.Context(), t)
	if errors.Is(err, storage.ErrConflict) {
		return httputil.InvalidParam("token already exists")
	} else if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, toTokenJSON(&t))
}

// adminGetRegistrationToken handles GET /_synapse/admin/v1/registration_tokens/{token}.
func (a *API) adminGetRegistrationToken(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	t, err := a.store.GetRegistrationToken(r.Context(), httputil.PathVar(r, "token"))
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("No such registration token")
	} else if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, toTokenJSON(t))
}

package clientapi

import (
	"errors"
	"net/http"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"maunium.net/go/mautrix/id"

	"parley/internal/httputil"
	"parley/storage"
)

type registerRequest struct {
	Username                 string      `json:"username"`
	Password                 string      `json:"password"`
	DeviceID                 id.DeviceID `json:"device_id"`
	InitialDeviceDisplayName string      `json:"initial_device_display_name"`
	InhibitLogin             bool        `json:"inhibit_login"`
	Auth                     *authDict   `json:"auth"`
}

type authDict struct {
	Type    string `json:"type"`
	Session string `json:"session"`
}

// register handles POST /register with user-interactive auth (m.login.dummy).
func (a *API) register(w http.ResponseWriter, r *http.Request) error {
	var req registerRequest
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if kind := r.URL.Query().Get("kind"); kind != "" && kind != "user" {
		return httputil.Errorf(http.StatusForbidden, httputil.CodeGuestAccessForbidden, "guest access is disabled")
	}
	if !a.cfg.Registration.Enabled {
		return httputil.Forbidden("Registration is disabled")
	}
	localpart := strings.ToLower(req.Username)
	if localpart == "" {
		localpart = strings.ToLower(NewToken("")[:12])
	}
	if err := id.ValidateUserLocalpart(localpart); err != nil {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeInvalidUsername, "invalid username: %v", err)
	}
	if req.Auth == nil || req.Auth.Type != "m.login.dummy" {
		return httputil.WriteJSON(w, http.StatusUnauthorized, map[string]any{
			"flows":   []map[string]any{{"stages": []string{"m.login.dummy"}}},
			"params":  map[string]any{},
			"session": NewToken(""),
		})
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(req.Password), bcrypt.DefaultCost)
	if err != nil {
		return httputil.BadJSON("invalid password")
	}
	userID := id.NewUserID(localpart, a.cfg.ServerName)
	err = a.store.CreateAccount(r.Context(), storage.Account{UserID: userID, PasswordHash: string(hash)})
	if errors.Is(err, storage.ErrConflict) {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUserInUse, "User ID already taken")
	} else if err != nil {
		return err
	}
	if req.InhibitLogin {
		return httputil.WriteJSON(w, http.StatusOK, map[string]any{"user_id": userID})
	}
	resp, err := a.newSession(r.Context(), userID, req.DeviceID, req.InitialDeviceDisplayName, r.RemoteAddr)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

// registerAvailable handles GET /register/available.
func (a *API) registerAvailable(w http.ResponseWriter, r *http.Request) error {
	localpart := r.URL.Query().Get("username")
	if err := id.ValidateUserLocalpart(localpart); err != nil || localpart == "" {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeInvalidUsername, "invalid username")
	}
	_, err := a.store.GetAccount(r.Context(), id.NewUserID(localpart, a.cfg.ServerName))
	if err == nil {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUserInUse, "User ID already taken")
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]bool{"available": true})
}

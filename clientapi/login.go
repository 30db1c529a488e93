package clientapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

type loginIdentifier struct {
	Type string `json:"type"`
	User string `json:"user"`
}

type loginRequest struct {
	Type                     string          `json:"type"`
	Identifier               loginIdentifier `json:"identifier"`
	User                     string          `json:"user"` // deprecated form
	Password                 string          `json:"password"`
	DeviceID                 id.DeviceID     `json:"device_id"`
	InitialDeviceDisplayName string          `json:"initial_device_display_name"`
}

type loginResponse struct {
	UserID      id.UserID   `json:"user_id"`
	AccessToken string      `json:"access_token"`
	DeviceID    id.DeviceID `json:"device_id"`
	HomeServer  string      `json:"home_server,omitempty"`
}

// loginFlows handles GET /login.
func (a *API) loginFlows(w http.ResponseWriter, r *http.Request) error {
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{
		"flows": []map[string]string{{"type": "m.login.password"}},
	})
}

// login handles POST /login.
func (a *API) login(w http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.Type != "m.login.password" {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "unsupported login type %q", req.Type)
	}
	name := req.Identifier.User
	if req.Identifier.Type == "" {
		name = req.User
	} else if req.Identifier.Type != "m.id.user" {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "unsupported identifier type %q", req.Identifier.Type)
	}
	if name == "" {
		return httputil.MissingParam("no user given")
	}
	userID, err := a.resolveLocalUser(name)
	if err != nil {
		return httputil.Forbidden("Invalid username or password")
	}
	acc, err := a.store.GetAccount(r.Context(), userID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (acc.PasswordHash == "" || acc.Deactivated)) {
		return httputil.Forbidden("Invalid username or password")
	} else if err != nil {
		return err
	}
	if bcrypt.CompareHashAndPassword([]byte(acc.PasswordHash), []byte(req.Password)) != nil {
		return httputil.Forbidden("Invalid username or password")
	}
	resp, err := a.newSession(r.Context(), userID, req.DeviceID, req.InitialDeviceDisplayName, r.RemoteAddr)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

// resolveLocalUser turns a localpart or full user ID into a local user ID.
func (a *API) resolveLocalUser(name string) (id.UserID, error) {
	if strings.HasPrefix(name, "@") {
		uid := id.UserID(name)
		localpart, server, err := uid.Parse()
		if err != nil || server != a.cfg.ServerName {
			return "", errors.New("not a local user")
		}
		return id.NewUserID(strings.ToLower(localpart), server), nil
	}
	return id.NewUserID(strings.ToLower(name), a.cfg.ServerName), nil
}

// newSession creates a device (or replaces deviceID's session) with a fresh access token.
func (a *API) newSession(ctx context.Context, userID id.UserID, deviceID id.DeviceID, displayName, ip string) (*loginResponse, error) {
	if deviceID == "" {
		deviceID = id.DeviceID(strings.ToUpper(NewToken("")[:10]))
	}
	tok := NewToken("pat_")
	_, err := a.store.CreateDevice(ctx, storage.NewDevice{
		UserID: userID, DeviceID: deviceID, DisplayName: displayName,
		AccessTokenHash: HashToken(tok), IP: ip,
	})
	if err != nil {
		return nil, err
	}
	return &loginResponse{UserID: userID, AccessToken: tok, DeviceID: deviceID, HomeServer: a.cfg.ServerName}, nil
}

// logout handles POST /logout.
func (a *API) logout(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if err := a.store.DeleteDevice(r.Context(), dev.UserID, dev.DeviceID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// whoami handles GET /account/whoami.
func (a *API) whoami(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{
		"user_id": dev.UserID, "device_id": dev.DeviceID, "is_guest": dev.IsGuest,
	})
}

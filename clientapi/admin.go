package clientapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/config"
	"parley/internal/httputil"
	"parley/internal/logging"
	"parley/internal/ratelimit"
	"parley/storage"
)

// nonceLifetime is how long a shared-secret registration nonce may be used.
const nonceLifetime = time.Minute

// registerAdminRoutes attaches the Synapse-compatible admin API Parley offers.
func (a *API) registerAdminRoutes(root *mux.Router) {
	a.handle(root, "/_synapse/admin/v1/register", "admin_register_nonce", a.adminRegisterNonce, http.MethodGet)
	a.handle(root, "/_synapse/admin/v1/register", "admin_register", a.adminRegister, http.MethodPost)
	a.registerAdminTokenRoutes(root)
}

var errSharedSecretOff = httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "Shared secret registration is not enabled")

// adminRegisterNonce handles GET /_synapse/admin/v1/register: a single-use nonce.
func (a *API) adminRegisterNonce(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.Registration.SharedSecret == "" {
		return errSharedSecretOff
	}
	if err := a.limits.CheckRequest(ratelimit.Register, r); err != nil {
		return err
	}
	nonce := NewToken("")
	if err := a.store.CreateRegistrationNonce(r.Context(), nonce, time.Now().UnixMilli()); err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]string{"nonce": nonce})
}

// SharedSecretMAC is the hex HMAC-SHA1, keyed by the shared secret, over
// nonce NUL username NUL password NUL ("admin" or "notadmin"), with
// NUL user_type appended when userType is set: the MAC of Synapse's
// shared-secret registration. register-user uses it too.
func SharedSecretMAC(secret, nonce, username, password string, admin bool, userType string) string {
	m := hmac.New(sha1.New, []byte(secret))
	role := "notadmin"
	if admin {
		role = "admin"
	}
	for i, part := range []string{nonce, username, password, role} {
		if i > 0 {
			m.Write([]byte{0})
		}
		m.Write([]byte(part))
	}
	if userType != "" {
		m.Write([]byte{0})
		m.Write([]byte(userType))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// adminRegister handles POST /_synapse/admin/v1/register.
func (a *API) adminRegister(w http.ResponseWriter, r *http.Request) error {
	secret := a.cfg.Registration.SharedSecret
	if secret == "" {
		return errSharedSecretOff
	}
	var req struct {
		Nonce       string  `json:"nonce"`
		Username    string  `json:"username"`
		Password    string  `json:"password"`
		Admin       bool    `json:"admin"`
		UserType    *string `json:"user_type"`
		Displayname string  `json:"displayname"`
		MAC         string  `json:"mac"`
	}
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	for name, v := range map[string]string{"nonce": req.Nonce, "username": req.Username, "password": req.Password, "mac": req.MAC} {
		if v == "" {
			return httputil.MissingParam("%s is required", name)
		}
	}
	userType := ""
	if req.UserType != nil {
		userType = *req.UserType
	}
	want := SharedSecretMAC(secret, req.Nonce, req.Username, req.Password, req.Admin, userType)
	// The nonce is spent whether or not the MAC matches.
	err := a.store.ConsumeRegistrationNonce(r.Context(), req.Nonce, time.Now().Add(-nonceLifetime).UnixMilli())
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "Unrecognised nonce")
	} else if err != nil {
		return err
	}
	if !hmac.Equal([]byte(want), []byte(req.MAC)) {
		return httputil.Forbidden("HMAC incorrect")
	}
	// The MAC covers the username as sent; the account, as in Synapse, is lower case.
	req.Username = strings.ToLower(req.Username)
	if err := a.validateLocalpart(req.Username); err != nil {
		return err
	}
	if err := a.checkPassword(req.Password); err != nil {
		return err
	}
	hash, err := a.hashPassword(req.Password)
	if err != nil {
		return err
	}
	userID := id.NewUserID(req.Username, a.cfg.ServerName)
	display := req.Displayname
	if display == "" {
		display = req.Username
	}
	d, resp := a.newDevice(sessionRequest{userID: userID, ip: ratelimit.RemoteIP(r)})
	_, err = a.store.Register(r.Context(), storage.Registration{
		Account: storage.Account{UserID: userID, PasswordHash: hash, IsAdmin: req.Admin}, DisplayName: display, Device: &d,
	})
	if errors.Is(err, storage.ErrConflict) {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUserInUse, "User ID already taken")
	} else if err != nil {
		return err
	}
	logging.From(r.Context(), a.log).Info("user registered with the shared secret", logging.UserID(userID), zap.Bool("admin", req.Admin))
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{
		"access_token": resp.AccessToken, "user_id": userID, "home_server": a.cfg.ServerName, "device_id": resp.DeviceID,
	})
}

// RegisterLocalUser creates an account directly in the database, with the
// same username and password rules as registration (parley register-user).
func RegisterLocalUser(ctx context.Context, cfg *config.Config, store storage.Store, localpart, password string, admin bool) (id.UserID, error) {
	a := &API{cfg: cfg, store: store}
	if err := a.validateLocalpart(localpart); err != nil {
		return "", err
	}
	if err := a.checkPassword(password); err != nil {
		return "", err
	}
	hash, err := a.hashPassword(password)
	if err != nil {
		return "", err
	}
	userID := id.NewUserID(localpart, cfg.ServerName)
	_, err = store.Register(ctx, storage.Registration{
		Account: storage.Account{UserID: userID, PasswordHash: hash, IsAdmin: admin}, DisplayName: localpart,
	})
	if errors.Is(err, storage.ErrConflict) {
		return "", fmt.Errorf("%s is already registered", userID)
	}
	return userID, err
}

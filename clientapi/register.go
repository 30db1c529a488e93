package clientapi

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
	"maunium.net/go/mautrix/id"

	"parley/internal/httputil"
	"parley/internal/logging"
	"parley/internal/ratelimit"
	"parley/storage"
)

// maxPasswordLength bounds passwords: bcrypt hashes at most 72 bytes, and
// Parley refuses longer passwords rather than silently ignoring the rest.
const maxPasswordLength = 72

type registerRequest struct {
	// Type is m.login.application_service for registrations by application services.
	Type                     string      `json:"type"`
	Username                 string      `json:"username"`
	Password                 *string     `json:"password"`
	DeviceID                 id.DeviceID `json:"device_id"`
	InitialDeviceDisplayName string      `json:"initial_device_display_name"`
	InhibitLogin             bool        `json:"inhibit_login"`
	RefreshToken             bool        `json:"refresh_token"`
	Auth                     *authDict   `json:"auth"`
}

// registerFlows are the UIA flows of POST /register.
func (a *API) registerFlows() [][]string {
	if a.cfg.Registration.RequireToken {
		return [][]string{{stageRegistrationToken}}
	}
	return [][]string{{stageDummy}}
}

// checkLocalpartGrammar checks what every new local user ID must meet,
// application services' users included: the localpart grammar (so no upper
// case) and at most 255 characters in all (M_INVALID_USERNAME).
func (a *API) checkLocalpartGrammar(localpart string) error {
	if err := id.ValidateUserLocalpart(localpart); err != nil {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeInvalidUsername, "User ID can only contain characters a-z, 0-9, or '=_-./+'")
	}
	if len(id.NewUserID(localpart, a.cfg.ServerName)) > 255 {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeInvalidUsername, "User ID is too long")
	}
	return nil
}

// validateLocalpart checks a requested username (client-server API, POST /register:
// M_INVALID_USERNAME): the localpart grammar (so no upper case), numeric
// localparts are kept for guests and a leading _ for application services.
func (a *API) validateLocalpart(localpart string) error {
	invalid := func(msg string) error {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeInvalidUsername, "%s", msg)
	}
	if err := a.checkLocalpartGrammar(localpart); err != nil {
		return err
	}
	if strings.HasPrefix(localpart, "_") {
		return invalid("User ID may not begin with _")
	}
	if strings.Trim(localpart, "0123456789") == "" {
		return invalid("Numeric user IDs are reserved for guest users")
	}
	if a.cfg.Moderation.LocalpartDenied(localpart) {
		return invalid("This user ID is not allowed on this server")
	}
	return nil
}

// checkPassword applies registration.min_password_length (M_WEAK_PASSWORD) and the maximum length.
func (a *API) checkPassword(pw string) error {
	if len(pw) < a.cfg.Registration.MinPasswordLength {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeWeakPassword, "Password must be at least %d characters", a.cfg.Registration.MinPasswordLength)
	}
	if len(pw) > maxPasswordLength {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeInvalidParam, "Password must be at most %d bytes", maxPasswordLength)
	}
	return nil
}

// hashPassword hashes pw with the configured bcrypt cost.
func (a *API) hashPassword(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), a.cfg.Registration.BcryptCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// regParams are the registration parameters a UIA session remembers, so
// that later requests of the session may send only auth (as Synapse does).
// The password is kept only as its hash.
type regParams struct {
	Username     string      `json:"username,omitempty"`
	PasswordHash string      `json:"password_hash,omitempty"`
	DeviceID     id.DeviceID `json:"device_id,omitempty"`
	DisplayName  string      `json:"initial_device_display_name,omitempty"`
	InhibitLogin bool        `json:"inhibit_login,omitempty"`
	RefreshToken bool        `json:"refresh_token,omitempty"`
}

// hasParams says whether the request carries registration parameters of its own.
func (req *registerRequest) hasParams() bool {
	return req.Username != "" || req.Password != nil || req.DeviceID != "" || req.InitialDeviceDisplayName != "" ||
		req.InhibitLogin || req.RefreshToken
}

// register handles POST /register.
func (a *API) register(w http.ResponseWriter, r *http.Request) error {
	var req registerRequest
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	switch kind := r.URL.Query().Get("kind"); kind {
	case "", "user":
	case "guest":
		return a.registerGuest(w, r, &req)
	default:
		return httputil.InvalidParam("kind must be user or guest")
	}
	if req.Type == loginTypeAppService || req.Auth != nil && req.Auth.Type == loginTypeAppService {
		return a.registerAppService(w, r, &req)
	}
	if !a.cfg.Registration.Enabled {
		return httputil.Forbidden("Registration is disabled")
	}
	if err := a.limits.CheckRequest(ratelimit.Register, r); err != nil {
		return err
	}
	ctx := r.Context()
	// Like Synapse, registration folds the requested username to lower case
	// (GET /register/available does not, and rejects upper case).
	req.Username = strings.ToLower(req.Username)
	// A retry of a registration that already succeeded in this session is
	// answered for the same user (Synapse's idempotent registration).
	if req.Auth != nil && req.Auth.Session != "" {
		sess, err := a.store.GetUIASession(ctx, req.Auth.Session)
		if err == nil && sess.Op == "register" && sess.ResultUserID != "" {
			return a.registerAgain(w, r, &req, sess)
		}
	}
	if req.Username != "" {
		if err := a.validateLocalpart(req.Username); err != nil {
			return err
		}
		if err := a.checkNotReservedUser(id.NewUserID(req.Username, a.cfg.ServerName), nil); err != nil {
			return err
		}
		if _, err := a.store.GetAccount(ctx, id.NewUserID(req.Username, a.cfg.ServerName)); err == nil {
			return httputil.Errorf(http.StatusBadRequest, httputil.CodeUserInUse, "User ID already taken")
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	if req.Password != nil {
		if err := a.checkPassword(*req.Password); err != nil {
			return err
		}
	}
	var params string
	if req.hasParams() {
		p := regParams{Username: req.Username, DeviceID: req.DeviceID, DisplayName: req.InitialDeviceDisplayName,
			InhibitLogin: req.InhibitLogin, RefreshToken: req.RefreshToken}
		if req.Password != nil {
			hash, err := a.hashPassword(*req.Password)
			if err != nil {
				return err
			}
			p.PasswordHash = hash
		}
		b, _ := json.Marshal(p)
		params = string(b)
	}
	sess, err := a.checkUIA(ctx, req.Auth, uiaSpec{op: "register", flows: a.registerFlows(), params: params})
	if err != nil {
		return err
	}
	var p regParams
	if sess.Params != "" {
		if err := json.Unmarshal([]byte(sess.Params), &p); err != nil {
			return fmt.Errorf("registration session params: %w", err)
		}
	}
	if p.PasswordHash == "" {
		return httputil.MissingParam("password is required")
	}
	localpart := p.Username
	if localpart == "" {
		localpart = strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(NewToken("")))[:12]
		if strings.Trim(localpart, "0123456789") == "" {
			localpart = "u" + localpart[1:]
		}
	}
	userID := id.NewUserID(localpart, a.cfg.ServerName)
	reg := storage.Registration{
		Account:           storage.Account{UserID: userID, PasswordHash: p.PasswordHash},
		DisplayName:       localpart,
		RegistrationToken: sess.RegistrationToken,
		UIASession:        sess.ID,
	}
	return a.finishRegistration(w, r, reg, &registerRequest{
		DeviceID: p.DeviceID, InitialDeviceDisplayName: p.DisplayName, InhibitLogin: p.InhibitLogin, RefreshToken: p.RefreshToken,
	}, false)
}

// registerAgain answers a repeated request of a completed registration
// session: the same user, logged in on a new session unless inhibit_login.
func (a *API) registerAgain(w http.ResponseWriter, r *http.Request, req *registerRequest, sess *storage.UIASession) error {
	if time.Since(time.UnixMilli(sess.CreatedTS)) > uiaSessionLifetime {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "Unknown or expired session ID")
	}
	var p regParams
	_ = json.Unmarshal([]byte(sess.Params), &p)
	if req.hasParams() {
		p = regParams{DeviceID: req.DeviceID, DisplayName: req.InitialDeviceDisplayName, InhibitLogin: req.InhibitLogin, RefreshToken: req.RefreshToken}
	}
	if p.InhibitLogin {
		return httputil.WriteJSON(w, http.StatusOK, map[string]any{"user_id": sess.ResultUserID})
	}
	resp, err := a.newSession(r.Context(), sessionRequest{
		userID: sess.ResultUserID, deviceID: p.DeviceID, displayName: p.DisplayName,
		ip: ratelimit.RemoteIP(r), refresh: p.RefreshToken,
	})
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

// errAwaitingApproval answers registration and login of accounts an admin
// has not approved yet (moderation.registration_requires_approval).
var errAwaitingApproval = httputil.Errorf(http.StatusForbidden, "M_USER_AWAITING_APPROVAL", "This account is pending approval by a server administrator.").
	With("approval_notice_medium", "org.matrix.msc3866.admin_console")

// finishRegistration stores the account (with its first device unless
// inhibit_login) and writes the response. Users that application services
// register (byAppService) need no approval.
func (a *API) finishRegistration(w http.ResponseWriter, r *http.Request, reg storage.Registration, req *registerRequest, byAppService bool) error {
	var resp *loginResponse
	approval := a.cfg.Moderation.RegistrationRequiresApproval && !reg.Account.IsGuest && !byAppService
	if !req.InhibitLogin && !approval {
		d, lr := a.newDevice(sessionRequest{
			userID: reg.Account.UserID, deviceID: req.DeviceID, displayName: req.InitialDeviceDisplayName,
			ip: ratelimit.RemoteIP(r), refresh: req.RefreshToken, guest: reg.Account.IsGuest,
		})
		reg.Device, resp = &d, lr
	}
	_, err := a.store.Register(r.Context(), reg)
	if errors.Is(err, storage.ErrConflict) {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUserInUse, "User ID already taken")
	} else if err != nil {
		return err
	}
	logging.From(r.Context(), a.log).Info("user registered", logging.UserID(reg.Account.UserID),
		zap.Bool("guest", reg.Account.IsGuest), zap.Bool("admin", reg.Account.IsAdmin))
	if approval {
		if err := a.store.SetAwaitingApproval(r.Context(), reg.Account.UserID, true); err != nil {
			return err
		}
		return errAwaitingApproval
	}
	if resp == nil {
		return httputil.WriteJSON(w, http.StatusOK, map[string]any{"user_id": reg.Account.UserID})
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

// registerGuest handles POST /register?kind=guest: a numeric localpart, no
// password, and a guest device (registration.allow_guests).
func (a *API) registerGuest(w http.ResponseWriter, r *http.Request, req *registerRequest) error {
	if !a.cfg.Registration.AllowGuests {
		return httputil.Errorf(http.StatusForbidden, httputil.CodeGuestAccessForbidden, "Guest access is disabled")
	}
	if err := a.limits.CheckRequest(ratelimit.Register, r); err != nil {
		return err
	}
	n, err := rand.Int(rand.Reader, big.NewInt(1e15))
	if err != nil {
		return err
	}
	// Guests are numeric, which registered users cannot choose (validateLocalpart).
	localpart := fmt.Sprintf("%d", n.Int64()+1e15)
	reg := storage.Registration{
		Account: storage.Account{UserID: id.NewUserID(localpart, a.cfg.ServerName), IsGuest: true, CreatedTS: time.Now().UnixMilli()},
		// Like registered users, guests start with their localpart as name.
		DisplayName: localpart,
	}
	req.InhibitLogin = false
	return a.finishRegistration(w, r, reg, req, false)
}

// registerAvailable handles GET /register/available.
func (a *API) registerAvailable(w http.ResponseWriter, r *http.Request) error {
	if err := a.limits.CheckRequest(ratelimit.Register, r); err != nil {
		return err
	}
	localpart := r.URL.Query().Get("username")
	if localpart == "" {
		return httputil.MissingParam("username is required")
	}
	if err := a.validateLocalpart(localpart); err != nil {
		return err
	}
	if err := a.checkNotReservedUser(id.NewUserID(localpart, a.cfg.ServerName), nil); err != nil {
		return err
	}
	_, err := a.store.GetAccount(r.Context(), id.NewUserID(localpart, a.cfg.ServerName))
	if err == nil {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUserInUse, "User ID already taken")
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]bool{"available": true})
}

// registrationTokenValidity handles GET /register/m.login.registration_token/validity (v1.2).
func (a *API) registrationTokenValidity(w http.ResponseWriter, r *http.Request) error {
	if !a.cfg.Registration.Enabled {
		return httputil.Forbidden("Registration is not enabled on this homeserver.")
	}
	if err := a.limits.CheckRequest(ratelimit.Register, r); err != nil {
		return err
	}
	token := r.URL.Query().Get("token")
	if token == "" {
		return httputil.MissingParam("token is required")
	}
	t, err := a.store.GetRegistrationToken(r.Context(), token)
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.WriteJSON(w, http.StatusOK, map[string]bool{"valid": false})
	} else if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]bool{"valid": t.Valid(time.Now().UnixMilli())})
}

package clientapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/internal/ratelimit"
	"parley/storage"
)

// loginTokenLifetime is how long an m.login.token token from /login/get_token lives.
const loginTokenLifetime = 2 * time.Minute

type loginIdentifier struct {
	Type string `json:"type"`
	User string `json:"user"`
}

type loginRequest struct {
	Type                     string           `json:"type"`
	Identifier               *loginIdentifier `json:"identifier"`
	User                     string           `json:"user"` // deprecated form
	Password                 string           `json:"password"`
	Token                    string           `json:"token"`
	DeviceID                 id.DeviceID      `json:"device_id"`
	InitialDeviceDisplayName string           `json:"initial_device_display_name"`
	RefreshToken             bool             `json:"refresh_token"`
}

// loginResponse is the body of a successful /login, /register or /refresh.
type loginResponse struct {
	UserID       id.UserID   `json:"user_id"`
	AccessToken  string      `json:"access_token"`
	DeviceID     id.DeviceID `json:"device_id"`
	HomeServer   string      `json:"home_server,omitempty"`
	RefreshToken string      `json:"refresh_token,omitempty"`
	ExpiresInMS  int64       `json:"expires_in_ms,omitempty"`
}

// loginFlows handles GET /login.
func (a *API) loginFlows(w http.ResponseWriter, r *http.Request) error {
	flows := []map[string]any{
		{"type": "m.login.password"},
		{"type": "m.login.token", "get_login_token": true},
	}
	if !a.apps.Empty() {
		flows = append(flows, map[string]any{"type": loginTypeAppService})
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"flows": flows})
}

var errBadLogin = httputil.Forbidden("Invalid username or password")

// login handles POST /login.
func (a *API) login(w http.ResponseWriter, r *http.Request) error {
	tok, _ := authn.Token(r)
	if as := a.apps.ByToken(tok); as == nil || as.IsRateLimited() {
		if err := a.limits.CheckRequest(ratelimit.Login, r); err != nil {
			return err
		}
	}
	var req loginRequest
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	var userID id.UserID
	switch req.Type {
	case "m.login.password":
		uid, err := a.passwordLogin(r.Context(), &req)
		if err != nil {
			a.audit(r.Context(), "login_failure", a.attemptedUser(&req), req.DeviceID, ratelimit.RemoteIP(r), map[string]any{"type": req.Type})
			return err
		}
		userID = uid
	case "m.login.token":
		if req.Token == "" {
			return httputil.MissingParam("token is required")
		}
		uid, err := a.store.ConsumeLoginToken(r.Context(), HashToken(req.Token), time.Now().UnixMilli())
		if errors.Is(err, storage.ErrNotFound) {
			return httputil.Forbidden("Invalid or expired login token")
		} else if err != nil {
			return err
		}
		userID = uid
	case loginTypeAppService:
		uid, err := a.loginAppService(r, &req)
		if err != nil {
			return err
		}
		userID = uid
	case "":
		return httputil.MissingParam("type is required")
	default:
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "Unknown login type %q", req.Type)
	}
	acc, err := a.store.GetAccount(r.Context(), userID)
	if errors.Is(err, storage.ErrNotFound) {
		return errBadLogin
	} else if err != nil {
		return err
	}
	if acc.Deactivated {
		return httputil.Errorf(http.StatusForbidden, httputil.CodeUserDeactivated, "This account has been deactivated")
	}
	if waiting, err := a.store.AwaitingApproval(r.Context(), userID); err != nil {
		return err
	} else if waiting {
		return errAwaitingApproval
	}
	newDevice := req.DeviceID == ""
	if !newDevice {
		_, err := a.store.GetDevice(r.Context(), userID, req.DeviceID)
		newDevice = errors.Is(err, storage.ErrNotFound)
	}
	resp, err := a.newSession(r.Context(), sessionRequest{
		userID: userID, deviceID: req.DeviceID, displayName: req.InitialDeviceDisplayName,
		ip: ratelimit.RemoteIP(r), refresh: req.RefreshToken, guest: acc.IsGuest,
	})
	if err != nil {
		return err
	}
	a.audit(r.Context(), "login", userID, resp.DeviceID, ratelimit.RemoteIP(r), map[string]any{"type": req.Type})
	if newDevice {
		a.audit(r.Context(), "new_device", userID, resp.DeviceID, ratelimit.RemoteIP(r), nil)
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

// attemptedUser is the user a failed login named, for the audit log.
func (a *API) attemptedUser(req *loginRequest) id.UserID {
	name := req.User
	if req.Identifier != nil && req.Identifier.User != "" {
		name = req.Identifier.User
	}
	if uid, err := a.resolveLocalUser(name); err == nil {
		return uid
	}
	return id.UserID(name)
}

// passwordLogin checks an m.login.password login and returns the user.
func (a *API) passwordLogin(ctx context.Context, req *loginRequest) (id.UserID, error) {
	name := req.User
	if req.Identifier != nil {
		switch req.Identifier.Type {
		case "m.id.user":
			name = req.Identifier.User
		case "m.id.thirdparty", "m.id.phone":
			// Parley stores no third-party identifiers, so none can match.
			return "", httputil.Forbidden("No account is bound to this third-party identifier")
		case "":
			return "", httputil.MissingParam("identifier.type is required")
		default:
			return "", httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "Unknown identifier type %q", req.Identifier.Type)
		}
	}
	if name == "" {
		return "", httputil.MissingParam("no user given")
	}
	userID, err := a.resolveLocalUser(name)
	if err != nil {
		return "", errBadLogin
	}
	acc, err := a.store.GetAccount(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		// Spend the time a hash comparison would, so timing does not reveal which users exist.
		_ = bcrypt.CompareHashAndPassword(dummyHash(a.cfg.Registration.BcryptCost), []byte(req.Password))
		return "", errBadLogin
	} else if err != nil {
		return "", err
	}
	if acc.PasswordHash == "" || bcrypt.CompareHashAndPassword([]byte(acc.PasswordHash), []byte(req.Password)) != nil {
		return "", errBadLogin
	}
	return userID, nil
}

var (
	dummyMu     sync.Mutex // guards dummyHashes
	dummyHashes = map[int][]byte{}
)

// dummyHash returns a bcrypt hash of cost cost to compare against for unknown users.
func dummyHash(cost int) []byte {
	dummyMu.Lock()
	defer dummyMu.Unlock()
	if h, ok := dummyHashes[cost]; ok {
		return h
	}
	h, _ := bcrypt.GenerateFromPassword([]byte("parley-no-such-user"), cost)
	dummyHashes[cost] = h
	return h
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

// sessionRequest is what newSession needs to log a device in.
type sessionRequest struct {
	userID      id.UserID
	deviceID    id.DeviceID
	displayName string
	ip          string
	refresh     bool
	guest       bool
}

// newDevice prepares a device with fresh tokens; the response carries the plain tokens.
func (a *API) newDevice(req sessionRequest) (storage.NewDevice, *loginResponse) {
	if req.deviceID == "" {
		req.deviceID = id.DeviceID(strings.ToUpper(NewToken("")[:10]))
	}
	tok := NewToken("pat_")
	d := storage.NewDevice{
		UserID: req.userID, DeviceID: req.deviceID, DisplayName: req.displayName,
		AccessTokenHash: HashToken(tok), IP: req.ip, IsGuest: req.guest,
	}
	resp := &loginResponse{UserID: req.userID, AccessToken: tok, DeviceID: req.deviceID, HomeServer: a.cfg.ServerName}
	if lifetime := a.cfg.Registration.AccessTokenLifetime; req.refresh && lifetime > 0 {
		resp.RefreshToken = NewToken("prt_")
		resp.ExpiresInMS = lifetime.Milliseconds()
		d.RefreshTokenHash = HashToken(resp.RefreshToken)
		d.ExpiresTS = time.Now().Add(lifetime).UnixMilli()
	}
	return d, resp
}

// newSession creates a device (or replaces deviceID's session) with a fresh access token.
func (a *API) newSession(ctx context.Context, req sessionRequest) (*loginResponse, error) {
	d, resp := a.newDevice(req)
	if _, err := a.store.CreateDevice(ctx, d); err != nil {
		return nil, err
	}
	return resp, nil
}

// refresh handles POST /refresh.
func (a *API) refresh(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.RefreshToken == "" {
		return httputil.MissingParam("refresh_token is required")
	}
	lifetime := a.cfg.Registration.AccessTokenLifetime
	if lifetime <= 0 {
		lifetime = 5 * time.Minute
	}
	access, refresh := NewToken("pat_"), NewToken("prt_")
	_, err := a.store.RefreshSession(r.Context(), HashToken(req.RefreshToken), HashToken(access), HashToken(refresh), time.Now().Add(lifetime).UnixMilli())
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.Errorf(http.StatusUnauthorized, httputil.CodeUnknownToken, "Unknown refresh token").With("soft_logout", false)
	} else if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{
		"access_token": access, "refresh_token": refresh, "expires_in_ms": lifetime.Milliseconds(),
	})
}

// getLoginToken handles POST /login/get_token (v1.7): a short-lived single-use
// m.login.token token, behind user-interactive auth.
func (a *API) getLoginToken(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req struct {
		Auth *authDict `json:"auth"`
	}
	if err := decodeOptionalObject(r, &req); err != nil {
		return err
	}
	sess, err := a.checkUIA(r.Context(), req.Auth, uiaSpec{op: "get_login_token", user: dev.UserID, flows: sensitiveFlows})
	if err != nil {
		return err
	}
	tok := NewToken("plt_")
	if err := a.store.CreateLoginToken(r.Context(), HashToken(tok), dev.UserID, time.Now().Add(loginTokenLifetime).UnixMilli()); err != nil {
		return err
	}
	_ = a.store.DeleteUIASession(r.Context(), sess.ID)
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"login_token": tok, "expires_in_ms": loginTokenLifetime.Milliseconds()})
}

// decodeOptionalObject is DecodeJSONObject that also accepts an empty body.
func decodeOptionalObject(r *http.Request, v any) error {
	b, err := httputil.ReadBody(r, httputil.MaxBodyBytes)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	return httputil.UnmarshalObject(b, v)
}

// logout handles POST /logout.
func (a *API) logout(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if err := a.store.DeleteDevice(r.Context(), dev.UserID, dev.DeviceID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// logoutAll handles POST /logout/all.
func (a *API) logoutAll(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if err := a.store.DeleteAllDevices(r.Context(), dev.UserID, ""); err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// whoami handles GET /account/whoami.
func (a *API) whoami(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	return httputil.WriteJSON(w, http.StatusOK, whoamiJSON(dev))
}

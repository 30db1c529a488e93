package adminapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/internal/logging"
	"parley/roomserver"
	"parley/storage"
)

// userJSON is a user as Synapse's admin API shows it.
type userJSON struct {
	Name         id.UserID `json:"name"`
	UserType     *string   `json:"user_type"`
	IsGuest      bool      `json:"is_guest"`
	Admin        bool      `json:"admin"`
	Deactivated  bool      `json:"deactivated"`
	Erased       bool      `json:"erased"`
	ShadowBanned bool      `json:"shadow_banned"`
	Approved     bool      `json:"approved"`
	Locked       bool      `json:"locked"`
	Suspended    bool      `json:"suspended"`
	DisplayName  *string   `json:"displayname"`
	AvatarURL    *string   `json:"avatar_url"`
	// CreationTS is in seconds, as Synapse reports it.
	CreationTS  int64   `json:"creation_ts"`
	Threepids   []any   `json:"threepids"`
	ExternalIDs []any   `json:"external_ids"`
	AppService  *string `json:"appservice_id"`
}

func (a *API) userJSON(ctx context.Context, info storage.AccountInfo) userJSON {
	u := toUserJSON(info)
	waiting, err := a.store.AwaitingApproval(ctx, info.UserID)
	u.Approved = err == nil && !waiting
	if rs, ok := a.restr.get(info.UserID); ok {
		u.Locked, u.Suspended, u.ShadowBanned = rs.Locked, rs.Suspended, rs.ShadowBanned
	}
	return u
}

func toUserJSON(a storage.AccountInfo) userJSON {
	u := userJSON{Name: a.UserID, IsGuest: a.IsGuest, Admin: a.IsAdmin, Deactivated: a.Deactivated,
		CreationTS: a.CreatedTS / 1000, Threepids: []any{}, ExternalIDs: []any{}}
	if a.DisplayName != "" {
		u.DisplayName = &a.DisplayName
	}
	if a.AvatarURL != "" {
		u.AvatarURL = &a.AvatarURL
	}
	return u
}

func boolParam(r *http.Request, name string, def bool) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, httputil.InvalidParam("%s must be true or false", name)
	}
	return b, nil
}

func intParam(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, httputil.InvalidParam("%s must be a non-negative integer", name)
	}
	return n, nil
}

// listUsers handles GET /_synapse/admin/v2/users.
func (a *API) listUsers(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var f storage.AccountFilter
	var err error
	if f.From, err = intParam(r, "from", 0); err != nil {
		return err
	}
	if f.Limit, err = intParam(r, "limit", 100); err != nil {
		return err
	}
	q := r.URL.Query()
	f.Name = q.Get("name")
	if f.Name == "" {
		f.Name = q.Get("user_id")
	}
	if f.Guests, err = boolParam(r, "guests", true); err != nil {
		return err
	}
	if f.Deactivated, err = boolParam(r, "deactivated", false); err != nil {
		return err
	}
	if q.Get("admins") != "" {
		b, err := boolParam(r, "admins", false)
		if err != nil {
			return err
		}
		f.Admins = &b
	}
	switch q.Get("order_by") {
	case "", "name":
	case "displayname", "creation_ts", "admin":
		f.OrderBy = q.Get("order_by")
	default:
		return httputil.InvalidParam("unknown order_by")
	}
	switch q.Get("dir") {
	case "", "f":
	case "b":
		f.Desc = true
	default:
		return httputil.InvalidParam("dir must be f or b")
	}
	users, total, err := a.store.ListAccounts(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]userJSON, len(users))
	for i, u := range users {
		out[i] = a.userJSON(r.Context(), u)
	}
	resp := map[string]any{"users": out, "total": total}
	if f.From+len(users) < total {
		resp["next_token"] = strconv.Itoa(f.From + len(users))
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

func (a *API) accountInfo(ctx context.Context, user id.UserID) (*storage.AccountInfo, error) {
	acc, err := a.store.GetAccount(ctx, user)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, httputil.NotFound("User not found")
	} else if err != nil {
		return nil, err
	}
	info := &storage.AccountInfo{Account: *acc}
	if p, err := a.store.GetProfile(ctx, user); err == nil {
		_ = json.Unmarshal(p["displayname"], &info.DisplayName)
		_ = json.Unmarshal(p["avatar_url"], &info.AvatarURL)
	}
	return info, nil
}

// getUser handles GET /_synapse/admin/v2/users/{userID}.
func (a *API) getUser(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	user, err := a.localUser(r)
	if err != nil {
		return err
	}
	info, err := a.accountInfo(r.Context(), user)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, a.userJSON(r.Context(), *info))
}

func (a *API) hashPassword(pw string) (string, error) {
	if len(pw) < a.cfg.Registration.MinPasswordLength {
		return "", httputil.Errorf(http.StatusBadRequest, httputil.CodeWeakPassword, "Password must be at least %d characters", a.cfg.Registration.MinPasswordLength)
	}
	if len(pw) > 512 {
		return "", httputil.InvalidParam("password is too long")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), a.cfg.Registration.BcryptCost)
	return string(h), err
}

// putUser handles PUT /_synapse/admin/v2/users/{userID}: create (201) or modify (200).
func (a *API) putUser(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	user, err := a.localUser(r)
	if err != nil {
		return err
	}
	var req struct {
		Password      *string `json:"password"`
		LogoutDevices *bool   `json:"logout_devices"`
		DisplayName   *string `json:"displayname"`
		AvatarURL     *string `json:"avatar_url"`
		Admin         *bool   `json:"admin"`
		Deactivated   *bool   `json:"deactivated"`
		Locked        *bool   `json:"locked"`
		Approved      *bool   `json:"approved"`
	}
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	status := http.StatusOK
	acc, err := a.store.GetAccount(ctx, user)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		status = http.StatusCreated
		hash := ""
		if req.Password != nil {
			if hash, err = a.hashPassword(*req.Password); err != nil {
				return err
			}
		}
		dn := user.Localpart()
		if req.DisplayName != nil {
			dn = *req.DisplayName
		}
		_, err := a.store.Register(ctx, storage.Registration{
			Account:     storage.Account{UserID: user, PasswordHash: hash, IsAdmin: req.Admin != nil && *req.Admin, CreatedTS: time.Now().UnixMilli()},
			DisplayName: dn,
		})
		if err != nil {
			return err
		}
		a.Audit(ctx, "user_created", dev, string(user), nil)
	case err != nil:
		return err
	default:
		if req.Password != nil {
			hash, err := a.hashPassword(*req.Password)
			if err != nil {
				return err
			}
			logout := req.LogoutDevices == nil || *req.LogoutDevices
			if err := a.store.SetPassword(ctx, user, hash, logout, ""); err != nil {
				return err
			}
			a.Audit(ctx, "password_change", dev, string(user), map[string]any{"by_admin": true})
		}
		if req.DisplayName != nil {
			if err := a.setProfile(ctx, user, "displayname", *req.DisplayName); err != nil {
				return err
			}
		}
		if req.Admin != nil && *req.Admin != acc.IsAdmin {
			if user == dev.UserID && !*req.Admin {
				return httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "You may not demote yourself")
			}
			if err := a.store.SetAccountAdmin(ctx, user, *req.Admin); err != nil {
				return err
			}
			a.Audit(ctx, "admin_flag_change", dev, string(user), map[string]any{"admin": *req.Admin})
		}
		if req.Deactivated != nil && *req.Deactivated != acc.Deactivated {
			if *req.Deactivated {
				if err := a.deactivate(ctx, dev, user, false); err != nil {
					return err
				}
			} else {
				if err := a.store.ReactivateAccount(ctx, user); err != nil {
					return err
				}
				a.Audit(ctx, "reactivation", dev, string(user), nil)
			}
		}
	}
	if req.Approved != nil {
		if err := a.store.SetAwaitingApproval(ctx, user, !*req.Approved); err != nil {
			return err
		}
		a.Audit(ctx, "approval", dev, string(user), map[string]any{"approved": *req.Approved})
	}
	if req.Locked != nil {
		if err := a.setLocked(ctx, dev, user, *req.Locked); err != nil {
			return httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "%v", err)
		}
	}
	if req.AvatarURL != nil {
		if err := a.setProfile(ctx, user, "avatar_url", *req.AvatarURL); err != nil {
			return err
		}
	}
	info, err := a.accountInfo(ctx, user)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, status, a.userJSON(ctx, *info))
}

func (a *API) setProfile(ctx context.Context, user id.UserID, field, value string) error {
	b, _ := json.Marshal(value)
	err := a.store.SetProfileField(ctx, user, field, b, 64<<10)
	if err != nil {
		return err
	}
	if a.rooms != nil {
		p, _ := a.store.GetProfile(ctx, user)
		var dn, av string
		_ = json.Unmarshal(p["displayname"], &dn)
		_ = json.Unmarshal(p["avatar_url"], &av)
		a.rooms.ProfileChanged(ctx, user, dn, av)
	}
	return nil
}

// deactivate deactivates user: in one transaction the account is marked and
// every device and token is revoked; then the user leaves every room (and
// rejects invites), which also removes them from the user directory.
func (a *API) deactivate(ctx context.Context, dev *authn.Device, user id.UserID, erase bool) error {
	if err := a.store.DeactivateAccount(ctx, user, erase); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return httputil.NotFound("User not found")
		}
		return err
	}
	log := logging.From(ctx, a.log)
	log.Info("account deactivated by admin", logging.UserID(user), zap.Bool("erase", erase))
	a.Audit(ctx, "deactivation", dev, string(user), map[string]any{"erase": erase})
	ms, err := a.store.UserMemberships(ctx, user)
	if err != nil {
		return err
	}
	for _, m := range ms {
		switch m.Membership {
		case "join", "invite", "knock":
		default:
			continue
		}
		if _, err := a.rooms.Leave(ctx, roomserver.MembershipRequest{RoomID: m.RoomID, Sender: user, Reason: "Account deactivated"}); err != nil {
			log.Warn("deactivated user could not leave room", logging.UserID(user), logging.RoomID(m.RoomID), zap.Error(err))
		}
	}
	return nil
}

// deactivateUser handles POST /_synapse/admin/v1/deactivate/{userID}.
func (a *API) deactivateUser(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	user, err := a.localUser(r)
	if err != nil {
		return err
	}
	var req struct {
		Erase bool `json:"erase"`
	}
	if r.ContentLength != 0 {
		if err := httputil.DecodeJSONObject(r, &req); err != nil {
			return err
		}
	}
	if err := a.deactivate(r.Context(), dev, user, req.Erase); err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]string{"id_server_unbind_result": "success"})
}

// resetPassword handles POST /_synapse/admin/v1/reset_password/{userID}.
func (a *API) resetPassword(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	user, err := a.localUser(r)
	if err != nil {
		return err
	}
	var req struct {
		NewPassword   *string `json:"new_password"`
		LogoutDevices *bool   `json:"logout_devices"`
	}
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.NewPassword == nil {
		return httputil.MissingParam("new_password is required")
	}
	hash, err := a.hashPassword(*req.NewPassword)
	if err != nil {
		return err
	}
	logout := req.LogoutDevices == nil || *req.LogoutDevices
	if err := a.store.SetPassword(r.Context(), user, hash, logout, ""); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return httputil.NotFound("User not found")
		}
		return err
	}
	a.Audit(r.Context(), "password_change", dev, string(user), map[string]any{"by_admin": true, "logout_devices": logout})
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{})
}

// whois handles GET /_synapse/admin/v1/whois/{userID}.
func (a *API) whois(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	user, err := a.existingLocalUser(r)
	if err != nil {
		return err
	}
	devs, err := a.store.ListDevices(r.Context(), user)
	if err != nil {
		return err
	}
	out := map[id.DeviceID]any{}
	for _, d := range devs {
		conns := []map[string]any{}
		if d.LastSeenIP != "" || d.LastSeenTS != 0 {
			conns = append(conns, map[string]any{"ip": d.LastSeenIP, "last_seen": d.LastSeenTS, "user_agent": ""})
		}
		out[d.DeviceID] = map[string]any{"sessions": []any{map[string]any{"connections": conns}}}
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"user_id": user, "devices": out})
}

// clientWhois handles the client-server API's GET /admin/whois/{userId}:
// server admins may look up anyone (audited as an admin API call), other
// users only themselves.
func (a *API) clientWhois(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if id.UserID(httputil.PathVar(r, "userID")) == dev.UserID {
		return a.whois(w, r, dev)
	}
	if !dev.IsAdmin {
		return httputil.Forbidden("You may only look up yourself")
	}
	a.Audit(r.Context(), "admin_api", dev, r.URL.Path, map[string]any{"method": r.Method, "endpoint": "whois"})
	return a.whois(w, r, dev)
}

// userDevices handles GET /_synapse/admin/v2/users/{userID}/devices.
func (a *API) userDevices(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	user, err := a.existingLocalUser(r)
	if err != nil {
		return err
	}
	devs, err := a.store.ListDevices(r.Context(), user)
	if err != nil {
		return err
	}
	out := make([]map[string]any, len(devs))
	for i, d := range devs {
		out[i] = map[string]any{"device_id": d.DeviceID, "display_name": d.DisplayName, "last_seen_ip": d.LastSeenIP,
			"last_seen_ts": d.LastSeenTS, "last_seen_user_agent": nil, "user_id": d.UserID}
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"devices": out, "total": len(out)})
}

// joinedRooms handles GET /_synapse/admin/v1/users/{userID}/joined_rooms.
func (a *API) joinedRooms(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	user, err := a.localUser(r)
	if err != nil {
		return err
	}
	ms, err := a.store.UserMemberships(r.Context(), user)
	if err != nil {
		return err
	}
	rooms := []id.RoomID{}
	for _, m := range ms {
		if m.Membership == "join" {
			rooms = append(rooms, m.RoomID)
		}
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"joined_rooms": rooms, "total": len(rooms)})
}

// loginAs handles POST /_synapse/admin/v1/users/{userID}/login: an access
// token for the user on a new hidden device, for impersonation by admins.
func (a *API) loginAs(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	user, err := a.localUser(r)
	if err != nil {
		return err
	}
	var req struct {
		ValidUntilMS *int64 `json:"valid_until_ms"`
	}
	if r.ContentLength != 0 {
		if err := httputil.DecodeJSONObject(r, &req); err != nil {
			return err
		}
	}
	if user == dev.UserID {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "Cannot use admin API to login as self")
	}
	info, err := a.accountInfo(r.Context(), user)
	if err != nil {
		return err
	}
	if info.Deactivated {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeUserDeactivated, "User is deactivated")
	}
	tok := randomToken("syt_")
	nd := storage.NewDevice{UserID: user, DeviceID: id.DeviceID(randomToken("")[:10]), DisplayName: "admin login",
		AccessTokenHash: hashToken(tok), IP: authn.ClientIP(r.Context())}
	if req.ValidUntilMS != nil {
		nd.ExpiresTS = *req.ValidUntilMS
	}
	if _, err := a.store.CreateDevice(r.Context(), nd); err != nil {
		return err
	}
	a.Audit(r.Context(), "admin_login_as", dev, string(user), map[string]any{"device_id": nd.DeviceID})
	return httputil.WriteJSON(w, http.StatusOK, map[string]string{"access_token": tok})
}

func randomToken(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// hashToken is how access tokens are stored (SHA-256, as clientapi.HashToken).
func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// Package adminapi serves the Synapse-compatible admin API
// (/_synapse/admin/...), Parley's own admin endpoints (/_parley/admin/...)
// and the client-server reporting endpoints. Every admin endpoint requires an
// account with the admin flag (403 M_FORBIDDEN otherwise) and is recorded in
// the audit log.
package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/config"
	"parley/internal/httputil"
	"parley/internal/logging"
	"parley/internal/ratelimit"
	"parley/retention"
	"parley/roomserver"
	"parley/storage"
)

// Deps is what the admin API needs.
type Deps struct {
	Config  *config.Config
	Store   storage.Store
	Rooms   *roomserver.Server
	Auth    authn.Authenticator
	Log     *zap.Logger
	Version string
	// Purger runs the retention purge on demand; nil disables the endpoint.
	Purger Purger
	// Limits are the client API's rate limiters (nil when disabled); per-user
	// message rate overrides are applied to them.
	Limits *ratelimit.Limits
}

// Purger runs one retention purge and returns how many events it deleted.
type Purger interface {
	PurgeOnce(ctx context.Context) (int, error)
	// Status is shown by the job status endpoints (JSON-encodable).
	Status() retention.Status
}

// API is the admin API.
type API struct {
	cfg     *config.Config
	store   storage.Store
	rooms   *roomserver.Server
	auth    authn.Authenticator
	log     *zap.Logger
	version string
	purger  Purger
	limits  *ratelimit.Limits
	restr   restrictions

	deleteMu sync.Mutex // guards deletes
	deletes  map[string]*deleteJob
}

// New builds the admin API.
func New(d Deps) *API {
	return &API{cfg: d.Config, store: d.Store, rooms: d.Rooms, auth: d.Auth, log: d.Log, version: d.Version, purger: d.Purger, limits: d.Limits,
		restr: restrictions{m: map[id.UserID]storage.Restrictions{}, blocked: map[id.RoomID]id.UserID{}, overrides: map[id.UserID]storage.RateLimitOverride{}}, deletes: map[string]*deleteJob{}}
}

// Register attaches the routes to root.
func (a *API) Register(root *mux.Router) {
	v1 := root.PathPrefix("/_synapse/admin/v1").Subrouter()
	v2 := root.PathPrefix("/_synapse/admin/v2").Subrouter()
	a.handle(v1, "/server_version", "admin_server_version", a.serverVersion, http.MethodGet)

	a.admin(v2, "/users", "admin_list_users", a.listUsers, http.MethodGet)
	a.admin(v2, "/users/{userID}", "admin_get_user", a.getUser, http.MethodGet)
	a.admin(v2, "/users/{userID}", "admin_put_user", a.putUser, http.MethodPut)
	a.admin(v2, "/users/{userID}/devices", "admin_user_devices", a.userDevices, http.MethodGet)
	a.admin(v1, "/deactivate/{userID}", "admin_deactivate", a.deactivateUser, http.MethodPost)
	a.admin(v1, "/reset_password/{userID}", "admin_reset_password", a.resetPassword, http.MethodPost)
	a.admin(v1, "/whois/{userID}", "admin_whois", a.whois, http.MethodGet)
	a.admin(v1, "/users/{userID}/joined_rooms", "admin_joined_rooms", a.joinedRooms, http.MethodGet)
	a.admin(v1, "/users/{userID}/shadow_ban", "admin_shadow_ban", a.shadowBan, http.MethodPost, http.MethodDelete)
	a.admin(v1, "/users/{userID}/override_ratelimit", "admin_override_ratelimit", a.overrideRateLimit, http.MethodGet, http.MethodPost, http.MethodDelete)
	a.admin(v1, "/suspend/{userID}", "admin_suspend", a.suspend, http.MethodPut)
	a.admin(v1, "/users/{userID}/login", "admin_login_as", a.loginAs, http.MethodPost)

	a.admin(v1, "/rooms", "admin_list_rooms", a.listRooms, http.MethodGet)
	a.admin(v1, "/rooms/{roomID}", "admin_get_room", a.getRoom, http.MethodGet)
	a.admin(v1, "/rooms/{roomID}/members", "admin_room_members", a.roomMembers, http.MethodGet)
	a.admin(v1, "/rooms/{roomID}/state", "admin_room_state", a.roomState, http.MethodGet)

	a.admin(v1, "/registration_tokens", "admin_list_registration_tokens", a.listTokens, http.MethodGet)
	a.admin(v1, "/registration_tokens/{token}", "admin_update_registration_token", a.updateToken, http.MethodPut)
	a.admin(v1, "/registration_tokens/{token}", "admin_delete_registration_token", a.deleteToken, http.MethodDelete)
	a.admin(v1, "/rooms/{roomID}/block", "admin_block_room", a.blockRoom, http.MethodPut)
	a.admin(v1, "/rooms/{roomID}/block", "admin_room_block_status", a.blockStatus, http.MethodGet)
	a.admin(v2, "/rooms/delete_status/{deleteID}", "admin_delete_status", a.deleteStatusByID, http.MethodGet)
	a.admin(v2, "/rooms/{roomID}/delete_status", "admin_room_delete_status", a.deleteStatusByRoom, http.MethodGet)
	a.admin(v2, "/rooms/{roomID}", "admin_delete_room", a.deleteRoom, http.MethodDelete)
	a.admin(v1, "/rooms/{roomID}/messages", "admin_room_messages", a.roomMessages, http.MethodGet)
	a.admin(v1, "/send_server_notice", "admin_send_server_notice", a.sendServerNotice, http.MethodPost)
	a.admin(v1, "/send_server_notice/{txnID}", "admin_send_server_notice_txn", a.sendServerNotice, http.MethodPut)
	a.admin(v1, "/event_reports", "admin_list_reports", a.listReports, http.MethodGet)
	a.admin(v1, "/event_reports/{reportID}", "admin_get_report", a.getReport, http.MethodGet)
	a.admin(v1, "/event_reports/{reportID}", "admin_delete_report", a.deleteReport, http.MethodDelete)

	a.admin(root, "/_parley/admin/v1/audit", "admin_audit", a.listAudit, http.MethodGet)
	a.admin(root, "/_parley/admin/v1/export", "admin_export", a.export, http.MethodGet)
	a.admin(v1, "/background_updates/status", "admin_background_updates", a.backgroundUpdates, http.MethodGet)
	a.admin(root, "/_parley/admin/v1/jobs", "admin_jobs", a.jobs, http.MethodGet)
	a.admin(root, "/_parley/admin/v1/retention/purge", "admin_retention_purge", a.purgeNow, http.MethodPost)
	a.admin(root, "/_parley/admin/v1/holds", "admin_list_holds", a.listHolds, http.MethodGet)
	a.admin(root, "/_parley/admin/v1/holds/{kind}/{target}", "admin_put_hold", a.putHold, http.MethodPut)
	a.admin(root, "/_parley/admin/v1/holds/{kind}/{target}", "admin_delete_hold", a.deleteHold, http.MethodDelete)

	v3 := root.PathPrefix("/_matrix/client/{apiversion:(?:r0|v3)}").Subrouter()
	a.authed(v3, "/admin/whois/{userID}", "whois", a.clientWhois, http.MethodGet)
	a.authed(v3, "/rooms/{roomID}/report/{eventID}", "report_event", a.reportEvent, http.MethodPost)
	a.authed(v3, "/rooms/{roomID}/report", "report_room", a.reportRoom, http.MethodPost)
	a.authed(v3, "/users/{userID}/report", "report_user", a.reportUser, http.MethodPost)
}

func (a *API) handle(r *mux.Router, path, name string, h httputil.HandlerFunc, methods ...string) {
	r.Handle(path, httputil.Wrap(a.log, name, h)).Methods(methods...)
}

func (a *API) authed(r *mux.Router, path, name string, h authn.Handler, methods ...string) {
	r.Handle(path, httputil.Wrap(a.log, name, authn.Required(a.auth, h))).Methods(methods...)
}

// admin registers a handler only server admins may call. Every call by an
// admin is appended to the audit log (action "admin_api") before it runs.
func (a *API) admin(r *mux.Router, path, name string, h authn.Handler, methods ...string) {
	a.authed(r, path, name, func(w http.ResponseWriter, req *http.Request, dev *authn.Device) error {
		if !dev.IsAdmin {
			return httputil.Forbidden("You are not a server admin")
		}
		if flag, ok := req.Context().Value(auditedKey{}).(*bool); ok {
			*flag = true
		}
		a.Audit(req.Context(), "admin_api", dev, req.URL.Path, map[string]any{"method": req.Method, "endpoint": name})
		return h(w, req, dev)
	}, methods...)
}

// Audit appends an entry to the audit log. Failures are logged, not
// returned: the action itself has happened (or is about to).
func (a *API) Audit(ctx context.Context, action string, dev *authn.Device, target string, details map[string]any) {
	e := storage.AuditEntry{TS: time.Now().UnixMilli(), Action: action, Target: target, IP: authn.ClientIP(ctx)}
	if dev != nil {
		e.UserID, e.DeviceID = dev.UserID, dev.DeviceID
	}
	if details != nil {
		e.Details, _ = json.Marshal(details)
	}
	if err := a.store.AppendAudit(ctx, e); err != nil {
		logging.From(ctx, a.log).Error("append audit entry", zap.String("action", action), zap.Error(err))
	}
}

// serverVersion handles GET /_synapse/admin/v1/server_version (no auth, as Synapse).
func (a *API) serverVersion(w http.ResponseWriter, r *http.Request) error {
	return httputil.WriteJSON(w, http.StatusOK, map[string]string{"server_version": a.version})
}

// localUser parses the {userID} path variable, which must be a local user.
func (a *API) localUser(r *http.Request) (id.UserID, error) {
	u := id.UserID(httputil.PathVar(r, "userID"))
	_, server, err := u.Parse()
	if err != nil {
		return "", httputil.InvalidParam("invalid user ID")
	}
	if server != a.cfg.ServerName {
		return "", httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "Can only look up local users")
	}
	return u, nil
}

// existingLocalUser is localUser for a user who must have an account
// (404 M_NOT_FOUND otherwise).
func (a *API) existingLocalUser(r *http.Request) (id.UserID, error) {
	u, err := a.localUser(r)
	if err != nil {
		return "", err
	}
	if _, err := a.store.GetAccount(r.Context(), u); errors.Is(err, storage.ErrNotFound) {
		return "", httputil.NotFound("User not found")
	} else if err != nil {
		return "", err
	}
	return u, nil
}

// purgeNow handles POST /_parley/admin/v1/retention/purge: one retention purge run now.
func (a *API) purgeNow(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if a.purger == nil {
		return httputil.Unrecognized()
	}
	n, err := a.purger.PurgeOnce(r.Context())
	if err != nil {
		return err
	}
	a.Audit(r.Context(), "retention_purge", dev, "", map[string]any{"purged": n})
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"purged": n})
}

// backgroundUpdates handles GET /_synapse/admin/v1/background_updates/status:
// Parley's schema migrations run at start-up, so there are never pending updates.
func (a *API) backgroundUpdates(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"enabled": true, "current_updates": map[string]any{}})
}

// jobs handles GET /_parley/admin/v1/jobs: the retention purge job and room deletions.
func (a *API) jobs(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	resp := map[string]any{}
	if a.purger != nil {
		resp["retention"] = a.purger.Status()
	}
	a.deleteMu.Lock()
	dels := []map[string]any{}
	for _, j := range a.deletes {
		dels = append(dels, j.json())
	}
	a.deleteMu.Unlock()
	resp["room_deletions"] = dels
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

package clientapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/asapi"
	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/internal/logging"
	"parley/internal/ratelimit"
	"parley/storage"
)

// loginTypeAppService is the registration and login type of application
// services (application service API, "Server admin style permissions").
const loginTypeAppService = "m.login.application_service"

// requestAppService returns the application service whose as_token r
// carries: 401 M_MISSING_TOKEN without a token, M_UNKNOWN_TOKEN when it is
// not an as_token.
func (a *API) requestAppService(r *http.Request) (*asapi.Service, error) {
	tok, ok := authn.Token(r)
	if !ok {
		return nil, httputil.Errorf(http.StatusUnauthorized, httputil.CodeMissingToken, "Missing application service token")
	}
	as := a.apps.ByToken(tok)
	if as == nil {
		return nil, httputil.Errorf(http.StatusUnauthorized, httputil.CodeUnknownToken, "Not an application service token")
	}
	return as, nil
}

// errExclusive answers registrations and aliases inside another party's
// exclusive application service namespace.
func errExclusive(what string) error {
	return httputil.Errorf(http.StatusBadRequest, httputil.CodeExclusive, "%s is reserved by an application service", what)
}

// checkNotReservedUser refuses user to anyone but the application service
// that reserved it (an exclusive users namespace, or its sender); as is the
// requesting service, nil for ordinary users.
func (a *API) checkNotReservedUser(user id.UserID, as *asapi.Service) error {
	if owner := a.apps.ExclusiveUser(user); owner != nil && owner != as {
		return errExclusive(string(user))
	}
	return nil
}

// checkNotReservedAlias is checkNotReservedUser for room aliases.
func (a *API) checkNotReservedAlias(alias id.RoomAlias, dev *authn.Device) error {
	if owner := a.apps.ExclusiveAlias(alias); owner != nil && owner.ID != dev.AppService {
		return errExclusive(string(alias))
	}
	return nil
}

// registerAppService handles POST /register with type
// m.login.application_service: the service creates a user in its users
// namespace, without user-interactive auth, even with registration closed.
func (a *API) registerAppService(w http.ResponseWriter, r *http.Request, req *registerRequest) error {
	as, err := a.requestAppService(r)
	if err != nil {
		return err
	}
	if as.IsRateLimited() {
		if err := a.limits.CheckRequest(ratelimit.Register, r); err != nil {
			return err
		}
	}
	if req.Username == "" {
		return httputil.MissingParam("username is required")
	}
	localpart := req.Username
	if strings.HasPrefix(localpart, "@") {
		l, server, err := id.UserID(localpart).Parse()
		if err != nil || server != a.cfg.ServerName {
			return httputil.Errorf(http.StatusBadRequest, httputil.CodeInvalidUsername, "%s is not a user ID of this server", req.Username)
		}
		localpart = l
	}
	if err := a.checkLocalpartGrammar(localpart); err != nil {
		return err
	}
	userID := id.NewUserID(localpart, a.cfg.ServerName)
	if !as.IsInterestedInUser(userID) {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeExclusive, "%s is not in the application service's users namespace", userID)
	}
	if err := a.checkNotReservedUser(userID, as); err != nil {
		return err
	}
	reg := storage.Registration{Account: storage.Account{UserID: userID, CreatedTS: time.Now().UnixMilli()}, DisplayName: localpart}
	logging.From(r.Context(), a.log).Debug("application service registers user", zap.String("appservice", as.ID), logging.UserID(userID))
	return a.finishRegistration(w, r, reg, req, true)
}

// loginAppService checks POST /login with type m.login.application_service:
// the as_token logs in a user of the service's users namespace, or its sender.
func (a *API) loginAppService(r *http.Request, req *loginRequest) (id.UserID, error) {
	as, err := a.requestAppService(r)
	if err != nil {
		return "", err
	}
	name := req.User
	if req.Identifier != nil {
		if req.Identifier.Type != "m.id.user" {
			return "", httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "application services log in with an m.id.user identifier")
		}
		name = req.Identifier.User
	}
	if name == "" {
		return "", httputil.MissingParam("no user given")
	}
	userID, err := a.resolveLocalUser(name)
	if err != nil || !as.IsInterestedInUser(userID) {
		return "", httputil.Forbidden("%s is not in the application service's users namespace", name)
	}
	return userID, nil
}

// EnsureAppServiceUser makes sure a local user of an application service's
// users namespace exists before it is used (invited, or its profile read):
// when it does not, the services are asked (GET /_matrix/app/v1/users/{userId}),
// and the user is created when one answers that it exists (the service
// should have registered it itself by then). It reports whether it created
// the user.
func (a *API) EnsureAppServiceUser(ctx context.Context, user id.UserID) bool {
	if a.apps.Empty() || user.Homeserver() != a.cfg.ServerName {
		return false
	}
	targets := a.apps.UserQueryTargets(user)
	if len(targets) == 0 {
		return false
	}
	if _, err := a.store.GetAccount(ctx, user); !errors.Is(err, storage.ErrNotFound) {
		return false
	}
	for _, as := range targets {
		if !a.asClient.QueryUser(ctx, as, user) {
			continue
		}
		localpart, _, _ := user.Parse()
		_, err := a.store.Register(ctx, storage.Registration{Account: storage.Account{UserID: user, CreatedTS: time.Now().UnixMilli()}, DisplayName: localpart})
		if err != nil && !errors.Is(err, storage.ErrConflict) {
			a.log.Warn("create application service user", zap.String("appservice", as.ID), logging.UserID(user), zap.Error(err))
			return false
		}
		return true
	}
	return false
}

// ResolveAppServiceAlias asks the services whose aliases namespace holds an
// unknown local alias (GET /_matrix/app/v1/rooms/{roomAlias}) and, when one
// answers that it created it, looks it up again.
func (a *API) ResolveAppServiceAlias(ctx context.Context, alias id.RoomAlias) (id.RoomID, bool) {
	for _, as := range a.apps.AliasQueryTargets(alias) {
		if !a.asClient.QueryAlias(ctx, as, alias) {
			continue
		}
		if roomID, _, err := a.store.ResolveAlias(ctx, alias); err == nil {
			return roomID, true
		}
	}
	return "", false
}

// pingAppService handles POST /_matrix/client/v1/appservice/{appserviceId}/ping (v1.7).
func (a *API) pingAppService(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var body struct {
		TransactionID string `json:"transaction_id"`
	}
	if err := decodeOptionalObject(r, &body); err != nil {
		return err
	}
	as := a.apps.ByID(dev.AppService)
	if as == nil || as.ID != httputil.PathVar(r, "appserviceId") {
		return httputil.Forbidden("Provided access token is not the appservice's as_token")
	}
	if !as.HasURL() {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeURLNotSet, "Application service doesn't have a URL configured")
	}
	took, err := a.asClient.Ping(r.Context(), as, body.TransactionID)
	var serr *asapi.StatusError
	switch {
	case errors.As(err, &serr):
		return httputil.Errorf(http.StatusBadGateway, httputil.CodeBadStatus, "Ping returned status %d", serr.Status).
			With("status", serr.Status).With("body", string(serr.Body))
	case err != nil && asapi.IsTimeout(err):
		return httputil.Errorf(http.StatusGatewayTimeout, httputil.CodeConnectionTimeout, "Connection to application service timed out")
	case err != nil:
		return httputil.Errorf(http.StatusBadGateway, httputil.CodeConnectionFailed, "Connection to application service failed: %v", err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]int64{"duration_ms": took.Milliseconds()})
}

// putAppServiceRoomVisibility handles PUT (and DELETE, as Synapse serves it)
// /directory/list/appservice/{networkId}/{roomId}: a room in or out of the
// service's network's room directory.
func (a *API) putAppServiceRoomVisibility(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if dev.AppService == "" {
		return httputil.Forbidden("Only application services can publish rooms in a network's directory")
	}
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	public := false
	if r.Method == http.MethodPut {
		if public, err = decodeVisibility(r, true); err != nil {
			return err
		}
	}
	network := httputil.PathVar(r, "networkId")
	if network == "" || strings.Contains(network, "|") {
		return httputil.InvalidParam("invalid network ID %q", network)
	}
	if _, err := a.rooms.RoomVisibility(r.Context(), roomID); err != nil {
		return roomError(err)
	}
	if err := a.store.SetAppServiceRoomPublic(r.Context(), dev.AppService, network, roomID, public); err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// whoamiJSON is the body of GET /account/whoami; device_id is omitted for
// application services acting without a device.
func whoamiJSON(dev *authn.Device) map[string]any {
	out := map[string]any{"user_id": dev.UserID, "is_guest": dev.IsGuest}
	if dev.DeviceID != "" {
		out["device_id"] = dev.DeviceID
	}
	return out
}

// massagedTS reads the ts query parameter with which an application service
// sets an event's origin_server_ts ("Timestamp massaging"); 0 when absent,
// and for other requesters, whose ts is ignored (as Synapse does).
func massagedTS(r *http.Request, dev *authn.Device) (int64, error) {
	if dev.AppService == "" || r.URL.RawQuery == "" {
		return 0, nil
	}
	v := r.URL.Query().Get("ts")
	if v == "" {
		return 0, nil
	}
	ts, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ts <= 0 || ts > 1<<53-1 {
		return 0, httputil.InvalidParam("ts must be a positive integer of milliseconds")
	}
	return ts, nil
}

// Package clientapi serves the Matrix client-server API: accounts, devices,
// profiles, rooms and the other endpoints clients call, except /sync (syncapi).
// Handlers parse, authenticate, call one domain method and write the answer.
package clientapi

import (
	"context"
	"net/http"

	"github.com/gorilla/mux"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/asapi"
	"parley/internal/authn"
	"parley/internal/config"
	"parley/internal/httputil"
	"parley/internal/identity"
	"parley/internal/ratelimit"
	"parley/roomserver"
	"parley/storage"
)

// ProfileListener is told when a local user's displayname or avatar_url
// changes, after the change is stored. The roomserver implements it to send
// updated m.room.member events into the user's joined rooms; errors are its
// own to log.
type ProfileListener interface {
	ProfileChanged(ctx context.Context, userID id.UserID, displayName, avatarURL string)
}

// Deps is what the client API needs.
type Deps struct {
	Config *config.Config
	Store  storage.Store
	Log    *zap.Logger
	// Rooms is the roomserver behind the room endpoints.
	Rooms *roomserver.Server
	// Limits is the rate limiter set; nil disables rate limiting.
	Limits *ratelimit.Limits
	// Profiles is notified of profile changes; nil for none.
	Profiles ProfileListener
	// RoomVersions returns the default room version and every supported one
	// with its stability ("stable"/"unstable") for /capabilities; nil omits
	// m.room_versions.
	RoomVersions func() (id.RoomVersion, map[id.RoomVersion]string)
	// Audit, when set, records security-relevant actions (logins, new
	// devices, password changes, deactivations) in the audit log.
	Audit AuditFunc
	// Remote answers profile and alias lookups for other servers; nil: 404.
	Remote RemoteQuerier
	// AppServices are the configured application services (nil: none), and
	// AppServiceClient calls them (user and alias queries, ping, third-party lookups).
	AppServices      *asapi.Registry
	AppServiceClient *asapi.Client
}

// AuditFunc appends an action by user (on device, from ip) to the audit log.
type AuditFunc func(ctx context.Context, action string, user id.UserID, device id.DeviceID, ip, target string, details map[string]any)

// API is the client-server API.
type API struct {
	cfg          *config.Config
	store        storage.Store
	log          *zap.Logger
	auth         *Authenticator
	rooms        *roomserver.Server
	limits       *ratelimit.Limits
	profiles     ProfileListener
	roomVersions func() (id.RoomVersion, map[id.RoomVersion]string)
	auditFn      AuditFunc
	remote       RemoteQuerier
	ids          *identity.Client
	apps         *asapi.Registry
	asClient     *asapi.Client
	// protocols caches the application services' third-party protocols.
	protocols protocolCache
}

// New builds the client API.
func New(d Deps) *API {
	auth := NewAuthenticator(d.Store, d.Log)
	auth.apps = d.AppServices
	asClient := d.AppServiceClient
	if asClient == nil {
		asClient = asapi.NewClient(nil)
	}
	return &API{
		cfg: d.Config, store: d.Store, log: d.Log, auth: auth, rooms: d.Rooms,
		limits: d.Limits, profiles: d.Profiles, roomVersions: d.RoomVersions, auditFn: d.Audit, remote: d.Remote,
		ids: identity.NewClient(d.Config, d.Log), apps: d.AppServices, asClient: asClient,
	}
}

// Authenticator returns the access-token authenticator, shared with syncapi.
func (a *API) Authenticator() authn.Authenticator { return a.auth }

// Limits returns the rate limiters (nil when disabled) for other route groups,
// e.g. ratelimit.Message around /send.
func (a *API) Limits() *ratelimit.Limits { return a.limits }

// audit records an action in the audit log when auditing is wired.
func (a *API) audit(ctx context.Context, action string, user id.UserID, device id.DeviceID, ip string, details map[string]any) {
	if a.auditFn != nil {
		a.auditFn(ctx, action, user, device, ip, string(user), details)
	}
}

// handle registers an unauthenticated handler.
func (a *API) handle(r *mux.Router, path, name string, h httputil.HandlerFunc, methods ...string) {
	r.Handle(path, httputil.Wrap(a.log, name, h)).Methods(methods...)
}

// authed registers a handler that requires an access token.
func (a *API) authed(r *mux.Router, path, name string, h authn.Handler, methods ...string) {
	r.Handle(path, httputil.Wrap(a.log, name, authn.Required(a.auth, h))).Methods(methods...)
}

// authedNoGuest registers a handler that requires a non-guest access token;
// guests get 403 M_GUEST_ACCESS_FORBIDDEN.
func (a *API) authedNoGuest(r *mux.Router, path, name string, h authn.Handler, methods ...string) {
	a.authed(r, path, name, authn.NoGuests(h), methods...)
}

// Register attaches the client API routes to root.
func (a *API) Register(root *mux.Router) {
	// gorilla applies regexps only inside named variables, so the version is one.
	client := root.PathPrefix("/_matrix/client").Subrouter()
	v3 := root.PathPrefix("/_matrix/client/{apiversion:(?:r0|v3)}").Subrouter()
	v1 := root.PathPrefix("/_matrix/client/v1").Subrouter()

	a.handle(client, "/versions", "versions", a.versions, http.MethodGet)
	a.handle(root, "/.well-known/matrix/client", "well_known_client", a.wellKnownClient, http.MethodGet)
	a.handle(root, "/.well-known/matrix/server", "well_known_server", a.wellKnownServer, http.MethodGet)

	a.registerAccountRoutes(v3, v1)
	a.registerAdminRoutes(root)
	a.registerRoomRoutes(v3, v1)
	a.registerAppServiceRoutes(v3, v1)
}

// registerAppServiceRoutes attaches the application service endpoints of
// the client-server API and the third-party lookups they answer.
func (a *API) registerAppServiceRoutes(v3, v1 *mux.Router) {
	a.authed(v1, "/appservice/{appserviceId}/ping", "appservice_ping", a.pingAppService, http.MethodPost)
	a.authed(v3, "/directory/list/appservice/{networkId}/{roomID}", "appservice_room_visibility", a.putAppServiceRoomVisibility, http.MethodPut, http.MethodDelete)
	a.authed(v3, "/thirdparty/protocols", "thirdparty_protocols", a.thirdPartyProtocols, http.MethodGet)
	a.authed(v3, "/thirdparty/protocol/{protocol}", "thirdparty_protocol", a.thirdPartyProtocol, http.MethodGet)
	for _, kind := range []string{"location", "user"} {
		a.authed(v3, "/thirdparty/"+kind, "thirdparty_"+kind, a.thirdPartyLookup(kind), http.MethodGet)
		a.authed(v3, "/thirdparty/"+kind+"/{protocol}", "thirdparty_"+kind, a.thirdPartyLookup(kind), http.MethodGet)
	}
}

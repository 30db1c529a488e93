// Package clientapi serves the Matrix client-server API: accounts, devices,
// profiles, rooms and the other endpoints clients call, except /sync (syncapi).
// Handlers parse, authenticate, call one domain method and write the answer.
package clientapi

import (
	"net/http"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"parley/internal/authn"
	"parley/internal/config"
	"parley/internal/httputil"
	"parley/roomserver"
	"parley/storage"
)

// Deps is what the client API needs.
type Deps struct {
	Config *config.Config
	Store  storage.Store
	Log    *zap.Logger
	// Rooms is the roomserver behind the room endpoints.
	Rooms *roomserver.Server
}

// API is the client-server API.
type API struct {
	cfg   *config.Config
	store storage.Store
	log   *zap.Logger
	auth  *Authenticator
	rooms *roomserver.Server
}

// New builds the client API.
func New(d Deps) *API {
	return &API{cfg: d.Config, store: d.Store, log: d.Log, auth: NewAuthenticator(d.Store), rooms: d.Rooms}
}

// Authenticator returns the access-token authenticator, shared with syncapi.
func (a *API) Authenticator() authn.Authenticator { return a.auth }

// handle registers an unauthenticated handler.
func (a *API) handle(r *mux.Router, path, name string, h httputil.HandlerFunc, methods ...string) {
	r.Handle(path, httputil.Wrap(a.log, name, h)).Methods(methods...)
}

// authed registers a handler that requires an access token.
func (a *API) authed(r *mux.Router, path, name string, h authn.Handler, methods ...string) {
	r.Handle(path, httputil.Wrap(a.log, name, authn.Required(a.auth, h))).Methods(methods...)
}

// Register attaches the client API routes to root.
func (a *API) Register(root *mux.Router) {
	// gorilla applies regexps only inside named variables, so the version is one.
	client := root.PathPrefix("/_matrix/client").Subrouter()
	v3 := root.PathPrefix("/_matrix/client/{apiversion:(?:r0|v3)}").Subrouter()

	a.handle(client, "/versions", "versions", a.versions, http.MethodGet)
	a.handle(root, "/.well-known/matrix/client", "well_known_client", a.wellKnownClient, http.MethodGet)

	a.registerAccountRoutes(v3)
	a.registerRoomRoutes(v3)
}

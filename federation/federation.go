// Package federation serves the Matrix Server-Server API. So far it publishes
// the server's signing key and version; the rest of the API is being built.
package federation

import (
	"net/http"

	"github.com/gorilla/mux"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/federation"

	"parley/internal/httputil"
)

// Deps is what the federation API needs.
type Deps struct {
	ServerName string
	Key        *federation.SigningKey
	Version    string
	Log        *zap.Logger
}

// API is the server-server API.
type API struct {
	d Deps
}

// New builds the federation API.
func New(d Deps) *API { return &API{d: d} }

// Register attaches the federation routes.
func (a *API) Register(root *mux.Router) {
	root.Handle("/_matrix/key/v2/server", httputil.Wrap(a.d.Log, "key_server", a.serverKey)).Methods(http.MethodGet)
	root.Handle("/_matrix/key/v2/server/{keyID}", httputil.Wrap(a.d.Log, "key_server", a.serverKey)).Methods(http.MethodGet)
	root.Handle("/_matrix/federation/v1/version", httputil.Wrap(a.d.Log, "federation_version", a.version)).Methods(http.MethodGet)
}

// serverKey handles GET /_matrix/key/v2/server: the current verify key, self-signed, valid for a day.
func (a *API) serverKey(w http.ResponseWriter, r *http.Request) error {
	return httputil.WriteJSON(w, http.StatusOK, a.d.Key.GenerateKeyResponse(a.d.ServerName, nil))
}

// version handles GET /_matrix/federation/v1/version.
func (a *API) version(w http.ResponseWriter, r *http.Request) error {
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"server": map[string]string{"name": "Parley", "version": a.d.Version}})
}

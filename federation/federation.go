// Package federation serves the Matrix Server-Server API and sends to other
// servers: server keys and the notary key query, X-Matrix request
// authentication (through mautrix's ServerAuth and a database-backed key
// cache), joins, invites and leaves in both directions, inbound transactions
// and the outbound per-destination transaction queue.
package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"parley/internal/config"
	"parley/internal/httputil"
	"parley/roomserver"
	"parley/storage"
)

// Deps is what the federation API needs.
type Deps struct {
	Config  *config.Config
	Key     *federation.SigningKey
	Version string
	Log     *zap.Logger
	Store   storage.Store
	Keys    *Keyring
	Client  *federation.Client
	Rooms   *roomserver.Server
	// Outbound sends to other servers (nil: nothing is sent).
	Outbound *Outbound
	// EDUs receives inbound EDUs (nil: they are dropped).
	EDUs EDUHandler
	// Media serves local media to other servers (nil: 404).
	Media LocalMedia
	// AppServices asks application services about local users and aliases
	// of their namespaces that do not exist yet (nil: nobody is asked).
	AppServices AppServiceQuerier
	// UserKeys gives local users' keys as other servers see them, with the
	// signatures their owners uploaded (nil: the stored keys as they are).
	UserKeys UserKeys
}

// UserKeys reads local users' device keys (all of a user's for an empty
// list) and cross-signing keys by type, signatures merged (the key server
// implements it).
type UserKeys interface {
	PublishedKeys(ctx context.Context, query map[id.UserID][]id.DeviceID) (map[id.UserID]map[id.DeviceID]json.RawMessage, map[id.UserID]map[string]json.RawMessage, error)
}

// AppServiceQuerier asks the application services about a local user or
// alias of their namespaces this server does not know (the client API
// implements it; application service API, "Querying").
type AppServiceQuerier interface {
	// EnsureAppServiceUser creates user when a service says it exists, and
	// reports whether it did.
	EnsureAppServiceUser(ctx context.Context, user id.UserID) bool
	// ResolveAppServiceAlias returns the room of alias when a service created it on request.
	ResolveAppServiceAlias(ctx context.Context, alias id.RoomAlias) (id.RoomID, bool)
}

// API is the server-server API.
type API struct {
	d          Deps
	serverName string
	auth       *federation.ServerAuth
	txns       *txnLocks
}

// New builds the federation API.
func New(d Deps) *API {
	a := &API{d: d, serverName: d.Config.ServerName, txns: newTxnLocks()}
	a.auth = federation.NewServerAuth(d.Client, d.Keys, func(federation.XMatrixAuth) string { return a.serverName })
	a.auth.MaxBodySize = d.Config.Listen.MaxRequestBytes
	return a
}

// Register attaches the federation routes.
func (a *API) Register(root *mux.Router) {
	root.Handle("/_matrix/key/v2/server", a.handle("key_server", a.serverKey)).Methods(http.MethodGet)
	root.Handle("/_matrix/key/v2/server/{keyID}", a.handle("key_server", a.serverKey)).Methods(http.MethodGet)
	root.Handle("/_matrix/key/v2/query/{serverName}", a.handle("key_query", a.queryKeysGet)).Methods(http.MethodGet)
	// The deprecated form with a key ID answers the same: all the server's keys.
	root.Handle("/_matrix/key/v2/query/{serverName}/{keyID}", a.handle("key_query", a.queryKeysGet)).Methods(http.MethodGet)
	root.Handle("/_matrix/key/v2/query", a.handle("key_query", a.queryKeysPost)).Methods(http.MethodPost)
	root.Handle("/_matrix/federation/v1/version", a.handle("federation_version", a.version)).Methods(http.MethodGet)
	root.Handle("/_matrix/federation/v1/openid/userinfo", a.handle("openid_userinfo", a.openIDUserInfo)).Methods(http.MethodGet)
	a.registerRooms(root)
}

func (a *API) handle(name string, h httputil.HandlerFunc) http.Handler {
	return httputil.Wrap(a.d.Log, name, h)
}

// authed wraps a handler that needs an X-Matrix signed request: the origin
// server's key is fetched (or taken from the cache), the signature over
// method, URI, origin, destination and body is checked, and the destination
// must be this server. Failures are 401 M_UNAUTHORIZED; denied servers get 403.
func (a *API) authed(name string, h httputil.HandlerFunc) http.Handler {
	return httputil.Wrap(a.d.Log, name, func(w http.ResponseWriter, r *http.Request) error {
		xm := federation.ParseXMatrixAuth(r.Header.Get("Authorization"))
		if xm.Origin != "" && !id.ValidateServerName(xm.Origin) {
			// For example a port that is not a number: no key could be fetched from it.
			return httputil.Errorf(http.StatusBadRequest, "M_UNAUTHORIZED", "origin %q is not a valid server name", xm.Origin)
		}
		if xm.Origin != "" && slices.Contains(a.d.Config.Federation.DenyServers, xm.Origin) {
			return httputil.Forbidden("server %s is not allowed to federate with this server", xm.Origin)
		}
		body, err := peekBody(r, a.auth.MaxBodySize)
		if err != nil {
			return err
		}
		req, rerr := a.auth.Authenticate(r)
		if rerr != nil && rerr.StatusCode == http.StatusUnauthorized && isEmptyObject(body) {
			// mautrix leaves an empty object out of the signed request
			// ("omitempty"); the sender signed "content": {}.
			if o, err := a.verifyEmptyContent(r); err == nil {
				r.Body = io.NopCloser(bytes.NewReader(body))
				req, rerr = r.WithContext(context.WithValue(r.Context(), originKey{}, o)), nil
			}
		}
		if rerr != nil && rerr.StatusCode == http.StatusUnauthorized && len(body) > 0 && json.Valid(body) {
			// A body that is JSON but not canonical JSON (floats, integers out
			// of range) cannot carry a valid signature: say why.
			v := jsontext.Value(bytes.Clone(body))
			if err := canonicaljson.Canonicalize(&v); err != nil {
				return httputil.BadJSON("request body is not valid canonical JSON: %v", err)
			}
		}
		if rerr != nil {
			code := rerr.ErrCode
			if code == "M_BAD_JSON" {
				code = "M_NOT_JSON" // mautrix's name for a body that does not parse
			}
			return &httputil.MatrixError{Status: rerr.StatusCode, Code: code, Message: rerr.Err}
		}
		// m.room.server_acl applies to every request about a room.
		if roomID := httputil.PathVar(req, "roomID"); roomID != "" {
			if ok, err := a.d.Rooms.ServerAllowed(req.Context(), id.RoomID(roomID), origin(req)); err != nil {
				return err
			} else if !ok {
				return httputil.Forbidden("server %s is denied by the room's server ACL", origin(req))
			}
		}
		return h(w, req)
	})
}

// peekBody reads a request body (at most limit+1 bytes) and puts it back for the next reader.
func peekBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	_ = r.Body.Close()
	if err != nil {
		return nil, httputil.BadJSON("could not read the request body")
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

// originKey holds the origin of requests authenticated by verifyEmptyContent.
type originKey struct{}

// origin is the authenticated origin server of a request handled by authed.
func origin(r *http.Request) string {
	if o := federation.OriginServerNameFromRequest(r); o != "" {
		return o
	}
	o, _ := r.Context().Value(originKey{}).(string)
	return o
}

func isEmptyObject(body []byte) bool {
	var m map[string]json.RawMessage
	return len(body) > 0 && json.Unmarshal(body, &m) == nil && m != nil && len(m) == 0
}

// verifyEmptyContent checks the X-Matrix signature of a request whose body is
// {} over method, URI, origin, destination and "content": {}, and returns the
// origin.
func (a *API) verifyEmptyContent(r *http.Request) (string, error) {
	xm := federation.ParseXMatrixAuth(r.Header.Get("Authorization"))
	if xm.Origin == "" || xm.Signature == "" || (xm.Destination != "" && xm.Destination != a.serverName) {
		return "", errors.New("incomplete X-Matrix header")
	}
	key, _, err := a.d.Keys.GetKey(xm.Origin, xm.KeyID, time.Now())
	if err != nil || key == "" {
		return "", fmt.Errorf("key %s of %s: %v", xm.KeyID, xm.Origin, err)
	}
	msg, err := canonicaljson.Marshal(map[string]any{"method": r.Method, "uri": r.URL.RequestURI(), "origin": xm.Origin,
		"destination": a.serverName, "content": map[string]any{}})
	if err != nil {
		return "", err
	}
	if err := signutil.VerifyJSONCanonical(key, xm.Signature, []byte(msg)); err != nil {
		return "", err
	}
	return xm.Origin, nil
}

// serverKey handles GET /_matrix/key/v2/server: the current verify key and
// old keys, self-signed, valid for a day.
func (a *API) serverKey(w http.ResponseWriter, r *http.Request) error {
	return httputil.WriteRawJSON(w, http.StatusOK, a.d.Keys.OwnKeys().Raw)
}

// version handles GET /_matrix/federation/v1/version.
func (a *API) version(w http.ResponseWriter, r *http.Request) error {
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"server": map[string]string{"name": "Parley", "version": a.d.Version}})
}

// Package searchapi serves server-side search (POST /search) and the user
// directory (POST /user_directory/search) of the client-server API.
package searchapi

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"parley/internal/authn"
	"parley/internal/config"
	"parley/internal/eventutil"
	"parley/internal/httputil"
	"parley/roomserver"
	"parley/storage"
)

// Deps is what the search API needs.
type Deps struct {
	Config *config.Config
	Store  storage.Store
	Rooms  *roomserver.Server
	Auth   authn.Authenticator
	Log    *zap.Logger
}

// API serves search and the user directory.
type API struct {
	cfg   *config.Config
	store storage.Store
	rooms *roomserver.Server
	auth  authn.Authenticator
	log   *zap.Logger
}

// New builds the search API.
func New(d Deps) *API {
	return &API{cfg: d.Config, store: d.Store, rooms: d.Rooms, auth: d.Auth, log: d.Log}
}

// Register attaches the routes to root.
func (a *API) Register(root *mux.Router) {
	v3 := root.PathPrefix("/_matrix/client/{apiversion:(?:r0|v3)}").Subrouter()
	v3.Handle("/search", httputil.Wrap(a.log, "search", authn.Required(a.auth, a.search))).Methods(http.MethodPost)
	v3.Handle("/user_directory/search", httputil.Wrap(a.log, "user_directory_search", authn.Required(a.auth, a.userDirectory))).Methods(http.MethodPost)
}

// rawJSON is pre-encoded JSON.
type rawJSON []byte

// MarshalJSON implements json.Marshaler.
func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

func clientEvent(dev *authn.Device, ev *storage.Event, now int64) rawJSON {
	in := eventutil.ClientInput{PDU: ev.JSON, EventID: string(ev.EventID), RoomID: string(ev.RoomID), Unsigned: ev.Unsigned, NowMS: now}
	if dev != nil && ev.TxnID != "" && ev.Sender == dev.UserID && ev.DeviceID == dev.DeviceID {
		in.TxnID = ev.TxnID
	}
	return eventutil.ClientEvent(make([]byte, 0, len(ev.JSON)+64), in)
}

func clientEvents(dev *authn.Device, evs []*storage.Event) []rawJSON {
	now := time.Now().UnixMilli()
	out := make([]rawJSON, len(evs))
	for i, ev := range evs {
		out[i] = clientEvent(dev, ev, now)
	}
	return out
}

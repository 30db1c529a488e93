// Package keyserver is the server side of end-to-end encryption: device,
// one-time and fallback keys (/keys/*), cross-signing, to-device messages,
// device-list tracking and server-side key backup (/room_keys/*). It also
// provides the sync streams for to-device messages and device lists, and the
// one-time key counts every /sync carries.
package keyserver

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/gorilla/mux"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/config"
	"parley/internal/httputil"
	"parley/storage"
	"parley/syncapi"
)

// RoomMembership answers the room questions device-list tracking needs. The
// roomserver's storage implements it; a nil RoomMembership means "users share
// no rooms" (only a user's own devices are tracked).
type RoomMembership interface {
	// SharedRoomUsers returns every user (local or remote) who shares a
	// joined room with user; user is not necessarily included.
	SharedRoomUsers(ctx context.Context, user id.UserID) (map[id.UserID]struct{}, error)
	// RoomJoinedUsers returns the joined members of a room.
	RoomJoinedUsers(ctx context.Context, room id.RoomID) ([]id.UserID, error)
}

// UIA runs user-interactive authentication for a sensitive operation of an
// existing account. It returns nil once auth is complete, else the error to
// send (the 401 challenge or a failed stage). The client API implements it.
type UIA interface {
	RequireUIA(ctx context.Context, auth json.RawMessage, user id.UserID, op string) error
}

// Deps is what the key server needs.
type Deps struct {
	Config     *config.Config
	Store      storage.Store
	Auth       authn.Authenticator
	Notifier   *syncapi.Notifier
	Rooms      RoomMembership
	UIA        UIA
	ServerName string
	Log        *zap.Logger
}

// Server is the key server.
type Server struct {
	cfg        *config.Config
	store      storage.Store
	auth       authn.Authenticator
	notifier   *syncapi.Notifier
	rooms      RoomMembership
	uia        UIA
	serverName string
	log        *zap.Logger
	// fed reaches other servers (SetFederation); nil: remote users fail with 503.
	fed Federation
}

// New builds the key server.
func New(d Deps) *Server {
	return &Server{cfg: d.Config, store: d.Store, auth: d.Auth, notifier: d.Notifier, rooms: d.Rooms, uia: d.UIA, serverName: d.ServerName, log: d.Log}
}

// SetRooms sets the room membership source; call it before serving requests.
func (s *Server) SetRooms(r RoomMembership) { s.rooms = r }

func (s *Server) authed(r *mux.Router, path, name string, h authn.Handler, methods ...string) {
	r.Handle(path, httputil.Wrap(s.log, name, authn.Required(s.auth, h))).Methods(methods...)
}

// Register attaches the key endpoints.
func (s *Server) Register(root *mux.Router) {
	v3 := root.PathPrefix("/_matrix/client/{apiversion:(?:r0|v3)}").Subrouter()
	s.authed(v3, "/keys/upload", "keys_upload", s.uploadKeys, http.MethodPost)
	s.authed(v3, "/keys/query", "keys_query", s.queryKeys, http.MethodPost)
	s.authed(v3, "/keys/claim", "keys_claim", s.claimKeys, http.MethodPost)
	s.authed(v3, "/keys/changes", "keys_changes", s.keyChanges, http.MethodGet)
	s.authed(v3, "/keys/device_signing/upload", "device_signing_upload", s.uploadCrossSigning, http.MethodPost)
	s.authed(v3, "/keys/signatures/upload", "signatures_upload", s.uploadSignatures, http.MethodPost)
	// The pre-1.1 paths of cross-signing, which Synapse still serves (and SyTest uses).
	unstable := root.PathPrefix("/_matrix/client/unstable").Subrouter()
	s.authed(unstable, "/keys/device_signing/upload", "device_signing_upload", s.uploadCrossSigning, http.MethodPost)
	s.authed(unstable, "/keys/signatures/upload", "signatures_upload", s.uploadSignatures, http.MethodPost)
	s.authed(v3, "/sendToDevice/{eventType}/{txnId}", "send_to_device", s.sendToDevice, http.MethodPut)

	s.authed(v3, "/room_keys/version", "create_backup", s.createBackup, http.MethodPost)
	s.authed(v3, "/room_keys/version", "get_backup", s.getBackup, http.MethodGet)
	s.authed(v3, "/room_keys/version/{version}", "get_backup", s.getBackup, http.MethodGet)
	s.authed(v3, "/room_keys/version/{version}", "update_backup", s.updateBackup, http.MethodPut)
	s.authed(v3, "/room_keys/version/{version}", "delete_backup", s.deleteBackup, http.MethodDelete)
	s.authed(v3, "/room_keys/keys", "put_backup_keys", s.putBackupKeys, http.MethodPut)
	s.authed(v3, "/room_keys/keys/{roomId}", "put_backup_keys", s.putBackupKeys, http.MethodPut)
	s.authed(v3, "/room_keys/keys/{roomId}/{sessionId}", "put_backup_keys", s.putBackupKeys, http.MethodPut)
	s.authed(v3, "/room_keys/keys", "get_backup_keys", s.getBackupKeys, http.MethodGet)
	s.authed(v3, "/room_keys/keys/{roomId}", "get_backup_keys", s.getBackupKeys, http.MethodGet)
	s.authed(v3, "/room_keys/keys/{roomId}/{sessionId}", "get_backup_keys", s.getBackupKeys, http.MethodGet)
	s.authed(v3, "/room_keys/keys", "delete_backup_keys", s.deleteBackupKeys, http.MethodDelete)
	s.authed(v3, "/room_keys/keys/{roomId}", "delete_backup_keys", s.deleteBackupKeys, http.MethodDelete)
	s.authed(v3, "/room_keys/keys/{roomId}/{sessionId}", "delete_backup_keys", s.deleteBackupKeys, http.MethodDelete)
	s.registerDehydrated(root)
}

// interestedUsers returns the users who must hear about a change to user's
// devices: user and everyone sharing a room with them.
func (s *Server) interestedUsers(ctx context.Context, user id.UserID) ([]id.UserID, error) {
	out := []id.UserID{user}
	if s.rooms == nil {
		return out, nil
	}
	shared, err := s.rooms.SharedRoomUsers(ctx, user)
	if err != nil {
		return nil, err
	}
	for u := range shared {
		if u != user {
			out = append(out, u)
		}
	}
	return out, nil
}

// wakeDeviceListWatchers wakes the /sync of every local user who shares a
// room with one of users. Errors are logged: the change is stored and the
// next sync of those users sees it anyway.
func (s *Server) wakeDeviceListWatchers(ctx context.Context, users ...id.UserID) {
	if s.notifier == nil {
		return
	}
	for _, u := range users {
		others, err := s.interestedUsers(ctx, u)
		if err != nil {
			s.log.Warn("device list watchers", zap.String("user_id", string(u)), zap.Error(err))
			continue
		}
		s.notifier.WakeUsers(others...)
	}
}

func (s *Server) isLocal(user id.UserID) bool {
	return user.Homeserver() == s.serverName
}

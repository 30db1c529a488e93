package keyserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// Server-side key backups (client-server API, "Server-side key backups").

// codeWrongRoomKeysVersion is the errcode for writes to a backup version that
// is not the current one.
const codeWrongRoomKeysVersion = "M_WRONG_ROOM_KEYS_VERSION"

// backupVersionBody is the body of POST and PUT /room_keys/version.
type backupVersionBody struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Version   *string         `json:"version"`
}

func (b *backupVersionBody) check() error {
	if b.Algorithm == "" {
		return httputil.MissingParam("algorithm is required")
	}
	// The spec's auth_data is an object; like Synapse, any JSON value is
	// stored as given (SyTest sends a string), only a missing one is refused.
	if len(b.AuthData) == 0 || string(b.AuthData) == "null" {
		return httputil.MissingParam("auth_data is required")
	}
	return nil
}

func unknownVersion() error { return httputil.NotFound("Unknown backup version") }

// parseVersion parses a backup version; a malformed one is unknown.
func parseVersion(v string) (int64, bool) {
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil && n > 0
}

// createBackup handles POST /room_keys/version.
func (s *Server) createBackup(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req backupVersionBody
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if err := req.check(); err != nil {
		return err
	}
	v, err := s.store.CreateBackupVersion(r.Context(), dev.UserID, req.Algorithm, req.AuthData)
	if err != nil {
		return fmt.Errorf("create backup version: %w", err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]string{"version": strconv.FormatInt(v, 10)})
}

// getBackup handles GET /room_keys/version and /room_keys/version/{version}.
func (s *Server) getBackup(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var version int64
	if v, ok := mvar(r, "version"); ok {
		n, valid := parseVersion(v)
		if !valid {
			return unknownVersion()
		}
		version = n
	}
	b, err := s.store.GetBackupVersion(r.Context(), dev.UserID, version)
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("No current backup version")
	} else if err != nil {
		return fmt.Errorf("get backup version: %w", err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{
		"algorithm": b.Algorithm, "auth_data": b.AuthData, "count": b.Count,
		"etag": strconv.FormatInt(b.Etag, 10), "version": strconv.FormatInt(b.Version, 10),
	})
}

func mvar(r *http.Request, name string) (string, bool) {
	v := httputil.PathVar(r, name)
	return v, v != ""
}

// updateBackup handles PUT /room_keys/version/{version}: only auth_data changes.
func (s *Server) updateBackup(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req backupVersionBody
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if err := req.check(); err != nil {
		return err
	}
	path := httputil.PathVar(r, "version")
	if req.Version != nil && *req.Version != path {
		return httputil.InvalidParam("version in body does not match the path")
	}
	version, ok := parseVersion(path)
	if !ok {
		return unknownVersion()
	}
	ctx := r.Context()
	cur, err := s.store.GetBackupVersion(ctx, dev.UserID, version)
	if errors.Is(err, storage.ErrNotFound) {
		return unknownVersion()
	} else if err != nil {
		return fmt.Errorf("get backup version: %w", err)
	}
	if cur.Algorithm != req.Algorithm {
		return httputil.InvalidParam("Algorithm does not match")
	}
	if err := s.store.UpdateBackupVersion(ctx, dev.UserID, version, req.AuthData); errors.Is(err, storage.ErrNotFound) {
		return unknownVersion()
	} else if err != nil {
		return fmt.Errorf("update backup version: %w", err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{})
}

// deleteBackup handles DELETE /room_keys/version/{version}.
func (s *Server) deleteBackup(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	version, ok := parseVersion(httputil.PathVar(r, "version"))
	if !ok {
		return unknownVersion()
	}
	if err := s.store.DeleteBackupVersion(r.Context(), dev.UserID, version); errors.Is(err, storage.ErrNotFound) {
		return unknownVersion()
	} else if err != nil {
		return fmt.Errorf("delete backup version: %w", err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{})
}

// keyBackupData is KeyBackupData; pointers find missing required fields.
type keyBackupData struct {
	FirstMessageIndex *int64          `json:"first_message_index"`
	ForwardedCount    *int64          `json:"forwarded_count"`
	IsVerified        *bool           `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

func (k *keyBackupData) toKey(room id.RoomID, session string) (storage.BackupKey, error) {
	// session_data is opaque: like Synapse, any JSON value but null is kept as given.
	if k.FirstMessageIndex == nil || k.ForwardedCount == nil || k.IsVerified == nil || len(k.SessionData) == 0 || string(k.SessionData) == "null" {
		return storage.BackupKey{}, httputil.BadJSON("key data for %s %s needs first_message_index, forwarded_count, is_verified and session_data", room, session)
	}
	return storage.BackupKey{RoomID: room, SessionID: session, FirstMessageIndex: *k.FirstMessageIndex,
		ForwardedCount: *k.ForwardedCount, IsVerified: *k.IsVerified, SessionData: k.SessionData}, nil
}

type roomKeyBackup struct {
	Sessions map[string]*keyBackupData `json:"sessions"`
}

func queryVersion(r *http.Request) (int64, error) {
	v := r.URL.Query().Get("version")
	if v == "" {
		return 0, httputil.MissingParam("version is required")
	}
	n, ok := parseVersion(v)
	if !ok {
		return 0, unknownVersion()
	}
	return n, nil
}

// putBackupKeys handles PUT /room_keys/keys[/{roomId}[/{sessionId}]].
func (s *Server) putBackupKeys(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	version, err := queryVersion(r)
	if err != nil {
		return err
	}
	room := id.RoomID(httputil.PathVar(r, "roomId"))
	session := httputil.PathVar(r, "sessionId")
	var keys []storage.BackupKey
	addRoom := func(room id.RoomID, rb *roomKeyBackup) error {
		if rb == nil || rb.Sessions == nil {
			return httputil.BadJSON("sessions is required")
		}
		for sid, kd := range rb.Sessions {
			if kd == nil {
				return httputil.BadJSON("key data for %s must be an object", sid)
			}
			k, err := kd.toKey(room, sid)
			if err != nil {
				return err
			}
			keys = append(keys, k)
		}
		return nil
	}
	switch {
	case session != "":
		var kd keyBackupData
		if err := httputil.DecodeJSONObject(r, &kd); err != nil {
			return err
		}
		k, err := kd.toKey(room, session)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	case room != "":
		var rb roomKeyBackup
		if err := httputil.DecodeJSONObject(r, &rb); err != nil {
			return err
		}
		if err := addRoom(room, &rb); err != nil {
			return err
		}
	default:
		var body struct {
			Rooms map[id.RoomID]*roomKeyBackup `json:"rooms"`
		}
		if err := httputil.DecodeJSONObject(r, &body); err != nil {
			return err
		}
		if body.Rooms == nil {
			return httputil.BadJSON("rooms is required")
		}
		for rid, rb := range body.Rooms {
			if err := addRoom(rid, rb); err != nil {
				return err
			}
		}
	}
	etag, count, current, err := s.store.PutBackupKeys(r.Context(), dev.UserID, version, keys)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return unknownVersion()
	case errors.Is(err, storage.ErrWrongBackupVersion):
		return httputil.Errorf(http.StatusForbidden, codeWrongRoomKeysVersion, "Wrong backup version.").
			With("current_version", strconv.FormatInt(current, 10))
	case err != nil:
		return fmt.Errorf("put backup keys: %w", err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"etag": strconv.FormatInt(etag, 10), "count": count})
}

func backupData(k storage.BackupKey) map[string]any {
	return map[string]any{"first_message_index": k.FirstMessageIndex, "forwarded_count": k.ForwardedCount,
		"is_verified": k.IsVerified, "session_data": k.SessionData}
}

// getBackupKeys handles GET /room_keys/keys[/{roomId}[/{sessionId}]].
func (s *Server) getBackupKeys(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	version, err := queryVersion(r)
	if err != nil {
		return err
	}
	room := id.RoomID(httputil.PathVar(r, "roomId"))
	session := httputil.PathVar(r, "sessionId")
	keys, err := s.store.BackupKeys(r.Context(), dev.UserID, version, room, session)
	if errors.Is(err, storage.ErrNotFound) {
		return unknownVersion()
	} else if err != nil {
		return fmt.Errorf("get backup keys: %w", err)
	}
	switch {
	case session != "":
		if len(keys) == 0 {
			return httputil.NotFound("No room_keys found")
		}
		return httputil.WriteJSON(w, http.StatusOK, backupData(keys[0]))
	case room != "":
		sessions := map[string]any{}
		for _, k := range keys {
			sessions[k.SessionID] = backupData(k)
		}
		return httputil.WriteJSON(w, http.StatusOK, map[string]any{"sessions": sessions})
	}
	rooms := map[id.RoomID]map[string]map[string]any{}
	for _, k := range keys {
		if rooms[k.RoomID] == nil {
			rooms[k.RoomID] = map[string]map[string]any{"sessions": {}}
		}
		rooms[k.RoomID]["sessions"][k.SessionID] = backupData(k)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"rooms": rooms})
}

// deleteBackupKeys handles DELETE /room_keys/keys[/{roomId}[/{sessionId}]].
func (s *Server) deleteBackupKeys(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	version, err := queryVersion(r)
	if err != nil {
		return err
	}
	room := id.RoomID(httputil.PathVar(r, "roomId"))
	session := httputil.PathVar(r, "sessionId")
	etag, count, err := s.store.DeleteBackupKeys(r.Context(), dev.UserID, version, room, session)
	if errors.Is(err, storage.ErrNotFound) {
		return unknownVersion()
	} else if err != nil {
		return fmt.Errorf("delete backup keys: %w", err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"etag": strconv.FormatInt(etag, 10), "count": count})
}

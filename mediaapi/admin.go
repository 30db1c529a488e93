package mediaapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

// registerAdmin attaches the Synapse-compatible media admin API.
func (a *API) registerAdmin(root *mux.Router) {
	adm := root.PathPrefix("/_synapse/admin/v1").Subrouter()
	a.authed(adm, "/media/quarantine/{serverName}/{mediaId}", "admin_media_quarantine", a.admin(a.quarantineMedia), http.MethodPost)
	a.authed(adm, "/media/unquarantine/{serverName}/{mediaId}", "admin_media_unquarantine", a.admin(a.unquarantineMedia), http.MethodPost)
	a.authed(adm, "/user/{userId}/media/quarantine", "admin_user_media_quarantine", a.admin(a.quarantineUserMedia), http.MethodPost)
	if a.roomMedia != nil {
		a.authed(adm, "/room/{roomId}/media/quarantine", "admin_room_media_quarantine", a.admin(a.quarantineRoomMedia), http.MethodPost)
		a.authed(adm, "/quarantine_media/{roomId}", "admin_room_media_quarantine", a.admin(a.quarantineRoomMedia), http.MethodPost)
	}
	a.authed(adm, "/media/{serverName}/{mediaId}", "admin_media_delete", a.admin(a.deleteOne), http.MethodDelete)
	a.authed(adm, "/users/{userId}/media", "admin_user_media_delete", a.admin(a.deleteUserMedia), http.MethodDelete)
	a.authed(adm, "/purge_media_cache", "admin_purge_media_cache", a.admin(a.purgeMediaCache), http.MethodPost)
}

// admin lets only server admins through (403 M_FORBIDDEN otherwise).
func (a *API) admin(h authn.Handler) authn.Handler {
	return func(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
		acc, err := a.accounts.GetAccount(r.Context(), dev.UserID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if acc == nil || !acc.IsAdmin {
			return httputil.Forbidden("You are not a server admin")
		}
		return h(w, r, dev)
	}
}

// quarantineMedia handles POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}.
// Media with the same content is quarantined too.
func (a *API) quarantineMedia(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	ref := storage.MediaRef{Origin: httputil.PathVar(r, "serverName"), MediaID: httputil.PathVar(r, "mediaId")}
	_, err := a.store.QuarantineMedia(r.Context(), ref, string(dev.UserID))
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("Media not found")
	}
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// unquarantineMedia handles POST /_synapse/admin/v1/media/unquarantine/{serverName}/{mediaId}.
func (a *API) unquarantineMedia(w http.ResponseWriter, r *http.Request, _ *authn.Device) error {
	ref := storage.MediaRef{Origin: httputil.PathVar(r, "serverName"), MediaID: httputil.PathVar(r, "mediaId")}
	err := a.store.UnquarantineMedia(r.Context(), ref)
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("Media not found")
	}
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

func pathUserID(r *http.Request) (id.UserID, error) {
	u := id.UserID(httputil.PathVar(r, "userId"))
	if _, _, err := u.Parse(); err != nil {
		return "", httputil.InvalidParam("Invalid user ID")
	}
	return u, nil
}

// quarantineUserMedia handles POST /_synapse/admin/v1/user/{userId}/media/quarantine.
func (a *API) quarantineUserMedia(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	u, err := pathUserID(r)
	if err != nil {
		return err
	}
	n, err := a.store.QuarantineUserMedia(r.Context(), u, string(dev.UserID))
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]int{"num_quarantined": n})
}

// quarantineRoomMedia handles POST /_synapse/admin/v1/room/{roomId}/media/quarantine.
func (a *API) quarantineRoomMedia(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID := id.RoomID(httputil.PathVar(r, "roomId"))
	uris, err := a.roomMedia.RoomMediaURIs(r.Context(), roomID)
	if errors.Is(err, ErrUnknownRoom) {
		return httputil.NotFound("Unknown room")
	}
	if err != nil {
		return fmt.Errorf("list media of %s: %w", roomID, err)
	}
	var refs []storage.MediaRef
	for _, u := range uris {
		if ref, ok := parseMXC(string(u)); ok {
			refs = append(refs, ref)
		}
	}
	n, err := a.store.QuarantineMediaRefs(r.Context(), refs, string(dev.UserID))
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]int{"num_quarantined": n})
}

type deletedMedia struct {
	DeletedMedia []string `json:"deleted_media"`
	Total        int      `json:"total"`
}

func deletedBody(refs []storage.MediaRef) deletedMedia {
	out := deletedMedia{DeletedMedia: []string{}, Total: len(refs)}
	for _, r := range refs {
		out.DeletedMedia = append(out.DeletedMedia, r.MediaID)
	}
	return out
}

// deleteOne handles DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}: local media only.
func (a *API) deleteOne(w http.ResponseWriter, r *http.Request, _ *authn.Device) error {
	ref := storage.MediaRef{Origin: httputil.PathVar(r, "serverName"), MediaID: httputil.PathVar(r, "mediaId")}
	if ref.Origin != a.cfg.ServerName {
		return httputil.InvalidParam("Can only delete local media")
	}
	deleted, err := a.deleteMedia(r.Context(), []storage.MediaRef{ref})
	if err != nil {
		return err
	}
	if len(deleted) == 0 {
		return httputil.NotFound("Media not found")
	}
	return httputil.WriteJSON(w, http.StatusOK, deletedBody(deleted))
}

// deleteUserMedia handles DELETE /_synapse/admin/v1/users/{userId}/media.
func (a *API) deleteUserMedia(w http.ResponseWriter, r *http.Request, _ *authn.Device) error {
	u, err := pathUserID(r)
	if err != nil {
		return err
	}
	refs, err := a.store.UserMedia(r.Context(), u)
	if err != nil {
		return err
	}
	deleted, err := a.deleteMedia(r.Context(), refs)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, deletedBody(deleted))
}

// purgeMediaCache handles POST /_synapse/admin/v1/purge_media_cache?before_ts=:
// remote media last accessed before before_ts (ms) is deleted; it is fetched
// again when next requested.
func (a *API) purgeMediaCache(w http.ResponseWriter, r *http.Request, _ *authn.Device) error {
	v := r.URL.Query().Get("before_ts")
	if v == "" {
		return httputil.MissingParam("Missing before_ts")
	}
	ts, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ts < 0 {
		return httputil.InvalidParam("before_ts must be a non-negative integer (ms)")
	}
	refs, err := a.store.RemoteMediaBefore(r.Context(), a.cfg.ServerName, ts)
	if err != nil {
		return err
	}
	deleted, err := a.deleteMedia(r.Context(), refs)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]int{"deleted": len(deleted)})
}

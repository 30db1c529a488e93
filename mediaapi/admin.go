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
	a.authed(adm, "/users/{userId}/media", "admin_user_media_list", a.admin(a.listUserMedia), http.MethodGet)
	a.authed(adm, "/users/{userId}/media", "admin_user_media_delete", a.admin(a.deleteUserMedia), http.MethodDelete)
	a.authed(adm, "/media/delete", "admin_media_delete_old", a.admin(a.deleteOldMedia), http.MethodPost)
	a.authed(adm, "/media/{serverName}/delete", "admin_media_delete_old", a.admin(a.deleteOldMedia), http.MethodPost)
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

// userMediaQuery parses the path's local user and the from, limit, order_by
// and dir parameters shared by listing and deleting a user's media.
func (a *API) userMediaQuery(r *http.Request) (id.UserID, storage.MediaListQuery, error) {
	q := storage.MediaListQuery{Limit: 100, OrderBy: "created_ts", Desc: true}
	u, err := pathUserID(r)
	if err != nil {
		return "", q, err
	}
	if _, server, _ := u.Parse(); server != a.cfg.ServerName {
		return "", q, httputil.InvalidParam("Can only look up local users")
	}
	acc, err := a.accounts.GetAccount(r.Context(), u)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return "", q, err
	}
	if acc == nil {
		return "", q, httputil.NotFound("Unknown user")
	}
	v := r.URL.Query()
	if q.From, err = nonNegative(v.Get("from"), 0, "from"); err != nil {
		return "", q, err
	}
	if q.Limit, err = nonNegative(v.Get("limit"), 100, "limit"); err != nil {
		return "", q, err
	}
	orderBy, dir := v.Get("order_by"), v.Get("dir")
	if orderBy != "" || dir != "" {
		// Either one given: Synapse's defaults are created_ts, forwards.
		q.OrderBy, q.Desc = "created_ts", false
	}
	if orderBy != "" {
		if !storage.MediaOrder[orderBy] {
			return "", q, httputil.InvalidParam("Unknown value for order_by: %s", orderBy)
		}
		q.OrderBy = orderBy
	}
	switch dir {
	case "", "f":
	case "b":
		q.Desc = true
	default:
		return "", q, httputil.InvalidParam("Unknown direction: %s", dir)
	}
	return u, q, nil
}

// nonNegative parses an optional non-negative integer query parameter.
func nonNegative(v string, def int, name string) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, httputil.InvalidParam("Query parameter %s must be a string representing a non-negative integer.", name)
	}
	return n, nil
}

// adminMedia is one item of GET /_synapse/admin/v1/users/{userId}/media.
type adminMedia struct {
	MediaID            string  `json:"media_id"`
	MediaType          string  `json:"media_type"`
	MediaLength        *int64  `json:"media_length"`
	UploadName         *string `json:"upload_name"`
	CreatedTS          int64   `json:"created_ts"`
	LastAccessTS       *int64  `json:"last_access_ts"`
	QuarantinedBy      *string `json:"quarantined_by"`
	SafeFromQuarantine bool    `json:"safe_from_quarantine"`
}

func toAdminMedia(m storage.Media) adminMedia {
	out := adminMedia{MediaID: m.MediaID, MediaType: m.ContentType, CreatedTS: m.CreatedTS}
	if !m.Pending() {
		out.MediaLength = &m.Size
	}
	if m.UploadName != "" {
		out.UploadName = &m.UploadName
	}
	if m.LastAccessTS != 0 {
		out.LastAccessTS = &m.LastAccessTS
	}
	if m.QuarantinedBy != "" {
		out.QuarantinedBy = &m.QuarantinedBy
	}
	return out
}

// listUserMedia handles GET /_synapse/admin/v1/users/{userId}/media.
func (a *API) listUserMedia(w http.ResponseWriter, r *http.Request, _ *authn.Device) error {
	u, q, err := a.userMediaQuery(r)
	if err != nil {
		return err
	}
	media, total, err := a.store.ListUserMedia(r.Context(), u, q)
	if err != nil {
		return err
	}
	resp := map[string]any{"total": total}
	list := make([]adminMedia, 0, len(media))
	for _, m := range media {
		list = append(list, toAdminMedia(m))
	}
	resp["media"] = list
	if next := q.From + len(media); next < total && len(media) > 0 {
		resp["next_token"] = next
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

// deleteUserMedia handles DELETE /_synapse/admin/v1/users/{userId}/media: the
// page of the user's media that listing with the same parameters would show
// (100 newest by default).
func (a *API) deleteUserMedia(w http.ResponseWriter, r *http.Request, _ *authn.Device) error {
	u, q, err := a.userMediaQuery(r)
	if err != nil {
		return err
	}
	media, _, err := a.store.ListUserMedia(r.Context(), u, q)
	if err != nil {
		return err
	}
	refs := make([]storage.MediaRef, 0, len(media))
	for _, m := range media {
		refs = append(refs, storage.MediaRef{Origin: m.Origin, MediaID: m.MediaID})
	}
	deleted, err := a.deleteMedia(r.Context(), refs)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, deletedBody(deleted))
}

// deleteOldMedia handles POST /_synapse/admin/v1/media/delete (and the
// deprecated /media/{serverName}/delete): local media last accessed before
// before_ts and larger than size_gt bytes is deleted, except avatars in use
// unless keep_profiles=false.
func (a *API) deleteOldMedia(w http.ResponseWriter, r *http.Request, _ *authn.Device) error {
	if server, ok := mux.Vars(r)["serverName"]; ok && server != a.cfg.ServerName {
		return httputil.InvalidParam("Can only delete local media")
	}
	v := r.URL.Query()
	if v.Get("before_ts") == "" {
		return httputil.MissingParam("Missing integer query parameter 'before_ts'")
	}
	before, err := strconv.ParseInt(v.Get("before_ts"), 10, 64)
	if err != nil || before < 0 {
		return httputil.InvalidParam("Query parameter before_ts must be a positive integer.")
	}
	if before < 30000000000 { // 1970-12-13 in ms, 2920 in seconds: seconds were meant
		return httputil.InvalidParam("Query parameter before_ts you provided is from the year 1970. Double check that you are providing a timestamp in milliseconds.")
	}
	var sizeGT int64
	if s := v.Get("size_gt"); s != "" {
		if sizeGT, err = strconv.ParseInt(s, 10, 64); err != nil || sizeGT < 0 {
			return httputil.InvalidParam("Query parameter size_gt must be a string representing a positive integer.")
		}
	}
	keepProfiles := true
	switch v.Get("keep_profiles") {
	case "", "true":
	case "false":
		keepProfiles = false
	default:
		return httputil.InvalidParam("Boolean query parameter keep_profiles must be one of ['true', 'false']")
	}
	refs, err := a.store.LocalMediaBefore(r.Context(), a.cfg.ServerName, before, sizeGT)
	if err != nil {
		return err
	}
	if keepProfiles && len(refs) > 0 {
		uris, err := a.store.AvatarMediaURIs(r.Context())
		if err != nil {
			return err
		}
		keep := map[storage.MediaRef]bool{}
		for _, u := range uris {
			if ref, ok := parseMXC(u); ok {
				keep[ref] = true
			}
		}
		kept := refs[:0]
		for _, ref := range refs {
			if !keep[ref] {
				kept = append(kept, ref)
			}
		}
		refs = kept
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

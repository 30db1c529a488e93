// Package mediaapi is the media repository: uploads (direct and via
// /create), authenticated downloads and thumbnails (client-server API v1.11
// "Content repository"), the legacy unauthenticated /_matrix/media/v3
// endpoints, URL previews, and the Synapse-compatible media admin API.
// Metadata lives in storage.MediaStore; bytes in a content-addressed
// blob.Store, so identical content is stored once.
package mediaapi

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/config"
	"parley/internal/httputil"
	"parley/mediaapi/blob"
	"parley/mediaapi/urlpreview"
	"parley/storage"
)

// ErrRemoteNotFound is returned by a RemoteFetcher when the remote server
// does not have the media.
var ErrRemoteNotFound = errors.New("remote media not found")

// RemoteMedia is media fetched from another server. The caller closes Body.
type RemoteMedia struct {
	ContentType string
	FileName    string
	Body        io.ReadCloser
}

// RemoteFetcher fetches media held by other homeservers, over federation
// (GET /_matrix/federation/v1/media/download/{mediaId}, a multipart answer
// whose second part is the content or a Location redirect). The federation
// component implements it; until it does, remote media is 404 M_NOT_FOUND.
// FetchMedia returns ErrRemoteNotFound when the origin has no such media.
type RemoteFetcher interface {
	FetchMedia(ctx context.Context, origin, mediaID string) (*RemoteMedia, error)
}

// RoomMediaLister lists the mxc:// URIs referenced by events of a room
// (content.url, content.info.thumbnail_url, avatars), for quarantining a
// room's media. The roomserver implements it.
type RoomMediaLister interface {
	RoomMediaURIs(ctx context.Context, roomID id.RoomID) ([]id.ContentURIString, error)
}

// Accounts is the account lookup the admin endpoints need.
type Accounts interface {
	GetAccount(ctx context.Context, userID id.UserID) (*storage.Account, error)
}

// Deps is what the media repository needs.
type Deps struct {
	Config   *config.Config
	Store    storage.MediaStore
	Accounts Accounts
	Blobs    blob.Store
	Auth     authn.Authenticator
	Log      *zap.Logger
	// Remote fetches remote media; nil answers 404 for media not cached.
	Remote RemoteFetcher
	// RoomMedia enables quarantine by room; nil leaves that endpoint unserved.
	RoomMedia RoomMediaLister
}

// API is the media repository's HTTP API.
type API struct {
	cfg       *config.Config
	store     storage.MediaStore
	accounts  Accounts
	blobs     blob.Store
	auth      authn.Authenticator
	log       *zap.Logger
	remote    RemoteFetcher
	roomMedia RoomMediaLister
	preview   *urlpreview.Fetcher

	// blobMu orders blob writes against deletions: Put+insert hold it for
	// reading, delete-row+delete-blob for writing, so a blob that a new row
	// shares is never deleted from under it.
	blobMu sync.RWMutex
	// uploads wakes downloads waiting for an asynchronous upload.
	uploads waiters
	// lastSweep is when expired pending media IDs were last removed (unix ms).
	lastSweep atomic.Int64
}

// New builds the media repository. It fails only on an invalid URL preview
// IP range, which config validation already rejects.
func New(d Deps) (*API, error) {
	a := &API{
		cfg: d.Config, store: d.Store, accounts: d.Accounts, blobs: d.Blobs, auth: d.Auth, log: d.Log,
		remote: d.Remote, roomMedia: d.RoomMedia, uploads: waiters{m: map[string]chan struct{}{}},
	}
	p := d.Config.Media.URLPreview
	if p.Enabled {
		g, err := urlpreview.NewGuard(p.IPRangeDenylist, p.IPRangeAllowlist)
		if err != nil {
			return nil, err
		}
		a.preview = urlpreview.NewFetcher(urlpreview.Options{
			Guard: g, Timeout: p.Timeout, MaxBytes: p.MaxSize,
			UserAgent: "Parley (Matrix homeserver; URL preview; +https://matrix.org)",
		})
	}
	return a, nil
}

func (a *API) handle(r *mux.Router, path, name string, h httputil.HandlerFunc, methods ...string) {
	r.Handle(path, httputil.Wrap(a.log, name, h)).Methods(methods...)
}

func (a *API) authed(r *mux.Router, path, name string, h authn.Handler, methods ...string) {
	r.Handle(path, httputil.Wrap(a.log, name, authn.Required(a.auth, h))).Methods(methods...)
}

// Register attaches the media routes:
//
//	upload.go:    POST /_matrix/media/v3/upload, POST /_matrix/media/v1/create,
//	              PUT /_matrix/media/v3/upload/{serverName}/{mediaId}, GET .../config
//	download.go:  GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]
//	              and the legacy /_matrix/media/v3/download (unauthenticated)
//	thumbnail.go: GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}, legacy too
//	preview.go:   GET /_matrix/client/v1/media/preview_url, /_matrix/media/v3/preview_url
//	admin.go:     /_synapse/admin/v1/media/... (quarantine, delete by ID, delete by
//	              date and size), .../room/{roomId}/media/quarantine,
//	              .../user/{userId}/media/quarantine, .../users/{userId}/media
//	              (list, delete), purge_media_cache
func (a *API) Register(root *mux.Router) {
	legacy := root.PathPrefix("/_matrix/media/{apiversion:(?:r0|v3)}").Subrouter()
	mediaV1 := root.PathPrefix("/_matrix/media/v1").Subrouter()
	client := root.PathPrefix("/_matrix/client/v1/media").Subrouter()

	a.authed(legacy, "/upload", "media_upload", a.upload, http.MethodPost)
	a.authed(legacy, "/upload/{serverName}/{mediaId}", "media_upload_async", a.uploadAsync, http.MethodPut)
	a.authed(mediaV1, "/create", "media_create", a.create, http.MethodPost)
	a.authed(legacy, "/config", "media_config_legacy", a.config, http.MethodGet)
	a.authed(client, "/config", "media_config", a.config, http.MethodGet)

	a.authed(client, "/download/{serverName}/{mediaId}", "media_download", a.download, http.MethodGet)
	a.authed(client, "/download/{serverName}/{mediaId}/{fileName}", "media_download", a.download, http.MethodGet)
	a.authed(client, "/thumbnail/{serverName}/{mediaId}", "media_thumbnail", a.thumbnail, http.MethodGet)
	if a.cfg.Media.LegacyUnauthenticated {
		a.handle(legacy, "/download/{serverName}/{mediaId}", "media_download_legacy", a.legacyDownload, http.MethodGet)
		a.handle(legacy, "/download/{serverName}/{mediaId}/{fileName}", "media_download_legacy", a.legacyDownload, http.MethodGet)
		a.handle(legacy, "/thumbnail/{serverName}/{mediaId}", "media_thumbnail_legacy", a.legacyThumbnail, http.MethodGet)
	}
	// As in Synapse, URL previews are not served at all unless enabled.
	if a.preview != nil {
		a.authed(client, "/preview_url", "media_preview_url", a.previewURL, http.MethodGet)
		a.authed(legacy, "/preview_url", "media_preview_url_legacy", a.previewURL, http.MethodGet)
	}
	a.registerAdmin(root)
}

// mediaIDAlphabet is what generated media IDs are made of.
const mediaIDAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newMediaID returns a random 24-character media ID (~142 bits).
func newMediaID() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = mediaIDAlphabet[int(b[i])%len(mediaIDAlphabet)]
	}
	return string(b)
}

// validMediaID accepts the characters the spec allows in media IDs: [A-Za-z0-9_-].
func validMediaID(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// parseMXC splits mxc://server/id.
func parseMXC(uri string) (storage.MediaRef, bool) {
	rest, ok := strings.CutPrefix(uri, "mxc://")
	if !ok {
		return storage.MediaRef{}, false
	}
	server, mediaID, ok := strings.Cut(rest, "/")
	if !ok || server == "" || !validMediaID(mediaID) {
		return storage.MediaRef{}, false
	}
	return storage.MediaRef{Origin: server, MediaID: mediaID}, true
}

func (a *API) mxc(mediaID string) string { return "mxc://" + a.cfg.ServerName + "/" + mediaID }

func nowMS() int64 { return time.Now().UnixMilli() }

// waiters lets downloads of a pending media ID wait for its upload.
type waiters struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// wait returns a channel closed when key is next uploaded.
func (w *waiters) wait(key string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.m[key]
	if !ok {
		ch = make(chan struct{})
		w.m[key] = ch
	}
	return ch
}

// done wakes the waiters of key.
func (w *waiters) done(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.m[key]; ok {
		close(ch)
		delete(w.m, key)
	}
}

// deleteBlobs removes blobs no row references any more; the caller holds blobMu.
func (a *API) deleteBlobs(ctx context.Context, hashes []string) {
	for _, h := range hashes {
		if err := a.blobs.Delete(ctx, h); err != nil {
			a.log.Warn("delete media blob", zap.String("sha256", h), zap.Error(err))
		}
	}
}

// releaseIfUnused deletes a blob stored for a write that then failed, unless
// a row references it. The caller must not hold blobMu.
func (a *API) releaseIfUnused(ctx context.Context, sha string) {
	a.blobMu.Lock()
	defer a.blobMu.Unlock()
	ctx = context.WithoutCancel(ctx)
	used, err := a.store.BlobInUse(ctx, sha)
	if err != nil {
		a.log.Warn("check media blob use", zap.String("sha256", sha), zap.Error(err))
		return
	}
	if !used {
		a.deleteBlobs(ctx, []string{sha})
	}
}

// deleteMedia deletes rows, thumbnails and unreferenced blobs.
func (a *API) deleteMedia(ctx context.Context, refs []storage.MediaRef) ([]storage.MediaRef, error) {
	a.blobMu.Lock()
	defer a.blobMu.Unlock()
	deleted, freed, err := a.store.DeleteMedia(ctx, refs)
	if err != nil {
		return nil, err
	}
	a.deleteBlobs(ctx, freed)
	return deleted, nil
}

package mediaapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/mediaapi/blob"
	"parley/storage"
)

// sweepInterval is how often expired pending media IDs are removed.
const sweepInterval = time.Minute

func tooLarge(max int64) *httputil.MatrixError {
	return httputil.Errorf(http.StatusRequestEntityTooLarge, httputil.CodeTooLarge,
		"Upload is larger than the limit of %d bytes", max)
}

// uploadMeta reads the content type and file name of an upload.
func uploadMeta(r *http.Request) (contentType, fileName string, err error) {
	contentType = r.Header.Get("Content-Type")
	fileName = r.URL.Query().Get("filename")
	if !utf8.ValidString(fileName) || len(fileName) > 1024 {
		return "", "", httputil.InvalidParam("filename must be valid UTF-8 of at most 1024 bytes")
	}
	for _, c := range fileName {
		if c < 0x20 || c == 0x7f {
			return "", "", httputil.InvalidParam("filename must not contain control characters")
		}
	}
	return contentType, fileName, nil
}

// putBody streams the request body into the blob store within the upload
// limit. The caller holds blobMu for reading until the row is stored.
func (a *API) putBody(ctx context.Context, r *http.Request) (blob.Info, error) {
	max := a.cfg.Media.MaxUploadSize
	if r.ContentLength > max {
		return blob.Info{}, tooLarge(max)
	}
	if r.Body == nil {
		r.Body = http.NoBody
	}
	info, err := a.blobs.Put(ctx, r.Body, max)
	switch {
	case errors.Is(err, blob.ErrTooLarge):
		return blob.Info{}, tooLarge(max)
	case err != nil && ctx.Err() != nil:
		return blob.Info{}, err
	case err != nil:
		return blob.Info{}, &httputil.MatrixError{Status: http.StatusBadRequest, Code: httputil.CodeUnknown, Message: "Failed to read or store the upload", Err: err}
	}
	return info, nil
}

// upload handles POST /_matrix/media/v3/upload.
func (a *API) upload(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	ctype, name, err := uploadMeta(r)
	if err != nil {
		return err
	}
	var m storage.Media
	err = func() error {
		a.blobMu.RLock()
		defer a.blobMu.RUnlock()
		info, err := a.putBody(r.Context(), r)
		if err != nil {
			return err
		}
		now := nowMS()
		m = storage.Media{
			Origin: a.cfg.ServerName, UserID: dev.UserID, ContentType: ctype, UploadName: name,
			Size: info.Size, SHA256: info.SHA256, CreatedTS: now, UploadedTS: now, LastAccessTS: now,
		}
		for try := 0; ; try++ {
			m.MediaID = newMediaID()
			err = a.store.StoreMedia(r.Context(), &m)
			if !errors.Is(err, storage.ErrConflict) || try == 3 {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("store media: %w", err)
		}
		return nil
	}()
	if err != nil {
		if m.SHA256 != "" {
			a.releaseIfUnused(r.Context(), m.SHA256)
		}
		return err
	}
	a.pregenerate(r.Context(), &m)
	return httputil.WriteJSON(w, http.StatusOK, map[string]string{"content_uri": a.mxc(m.MediaID)})
}

// create handles POST /_matrix/media/v1/create: it reserves a media ID to be
// uploaded later with PUT /upload/{serverName}/{mediaId}.
func (a *API) create(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	a.sweepPending(r.Context())
	now := nowMS()
	m := storage.Media{
		Origin: a.cfg.ServerName, MediaID: newMediaID(), UserID: dev.UserID, CreatedTS: now,
		ExpiresTS: now + a.cfg.Media.UnusedExpiration.Milliseconds(),
	}
	err := a.store.CreatePendingMedia(r.Context(), m, a.cfg.Media.MaxPendingUploads, now)
	if errors.Is(err, storage.ErrTooLarge) {
		e := httputil.RateLimited(sweepInterval)
		e.Message = "Too many pending uploads: upload to the media IDs already created first"
		return e
	}
	if err != nil {
		return fmt.Errorf("create media id: %w", err)
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{
		"content_uri": a.mxc(m.MediaID), "unused_expires_at": m.ExpiresTS,
	})
}

// sweepPending removes expired pending media IDs, at most once per sweepInterval.
func (a *API) sweepPending(ctx context.Context) {
	now := nowMS()
	last := a.lastSweep.Load()
	if now-last < sweepInterval.Milliseconds() || !a.lastSweep.CompareAndSwap(last, now) {
		return
	}
	refs, err := a.store.ExpiredPendingMedia(ctx, now)
	if err == nil && len(refs) > 0 {
		_, err = a.deleteMedia(ctx, refs)
		for _, r := range refs {
			a.uploads.done(r.Origin + "/" + r.MediaID) // waiters then find the ID gone
		}
	}
	if err != nil {
		a.log.Warn("remove expired pending media", zap.Error(err))
	}
}

// uploadAsync handles PUT /_matrix/media/v3/upload/{serverName}/{mediaId}.
func (a *API) uploadAsync(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	server, mediaID := httputil.PathVar(r, "serverName"), httputil.PathVar(r, "mediaId")
	notFound := httputil.NotFound("Unknown media ID")
	if server != a.cfg.ServerName || !validMediaID(mediaID) {
		return notFound
	}
	ctype, name, err := uploadMeta(r)
	if err != nil {
		return err
	}
	// Check before reading the body, and again atomically when storing.
	cur, err := a.store.GetMedia(r.Context(), server, mediaID)
	if err := a.pendingError(cur, err, dev, nowMS()); err != nil {
		return err
	}
	var m storage.Media
	err = func() error {
		a.blobMu.RLock()
		defer a.blobMu.RUnlock()
		info, err := a.putBody(r.Context(), r)
		if err != nil {
			return err
		}
		now := nowMS()
		m = storage.Media{
			Origin: server, MediaID: mediaID, UserID: dev.UserID, ContentType: ctype, UploadName: name,
			Size: info.Size, SHA256: info.SHA256, UploadedTS: now,
		}
		return a.pendingError(nil, a.store.CompletePendingMedia(r.Context(), &m, now), dev, now)
	}()
	if err != nil {
		if m.SHA256 != "" {
			a.releaseIfUnused(r.Context(), m.SHA256)
		}
		return err
	}
	a.uploads.done(server + "/" + mediaID)
	a.pregenerate(r.Context(), &m)
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// pendingError maps the state of a pending media ID (or a store error) to
// the errors of PUT /upload/{serverName}/{mediaId}.
func (a *API) pendingError(cur *storage.Media, err error, dev *authn.Device, now int64) error {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return httputil.NotFound("Unknown media ID")
	case errors.Is(err, storage.ErrForbidden):
		return httputil.Forbidden("This media ID was created by another user")
	case errors.Is(err, storage.ErrConflict):
		return httputil.Errorf(http.StatusConflict, httputil.CodeCannotOverwriteMedia, "Media already uploaded")
	case err != nil:
		return err
	case cur == nil:
		return nil
	case cur.UserID != dev.UserID:
		return httputil.Forbidden("This media ID was created by another user")
	case !cur.Pending():
		return httputil.Errorf(http.StatusConflict, httputil.CodeCannotOverwriteMedia, "Media already uploaded")
	case cur.ExpiresTS != 0 && cur.ExpiresTS <= now:
		return httputil.NotFound("Unknown media ID")
	}
	return nil
}

// config handles GET /_matrix/client/v1/media/config (and the legacy path).
func (a *API) config(w http.ResponseWriter, r *http.Request, _ *authn.Device) error {
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"m.upload.size": a.cfg.Media.MaxUploadSize})
}

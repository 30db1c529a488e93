package mediaapi

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/mediaapi/blob"
	"parley/storage"
)

const (
	// defaultWait and maxWait bound timeout_ms: how long a download of a
	// pending media ID waits for its upload.
	defaultWait = 20 * time.Second
	maxWait     = 120 * time.Second
	// touchInterval limits last_access_ts updates to one per interval per item.
	touchInterval = 10 * time.Minute
	// csp forbids everything active in served media (a browser opening an
	// uploaded HTML or SVG file runs nothing).
	csp = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"
)

// inlineTypes are the content types the spec lets servers serve with
// Content-Disposition: inline ("Serving inline content"); all others are
// attachments.
var inlineTypes = map[string]bool{
	"text/css": true, "text/plain": true, "text/csv": true,
	"application/json": true, "application/ld+json": true,
	"image/jpeg": true, "image/gif": true, "image/png": true, "image/apng": true, "image/webp": true, "image/avif": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true, "video/quicktime": true,
	"audio/mp4": true, "audio/webm": true, "audio/aac": true, "audio/mpeg": true, "audio/ogg": true,
	"audio/wave": true, "audio/wav": true, "audio/x-wav": true, "audio/x-pn-wav": true, "audio/flac": true, "audio/x-flac": true,
}

// fetchOpts are the query parameters shared by download and thumbnail.
type fetchOpts struct {
	legacy      bool
	allowRemote bool
	wait        time.Duration
}

func parseFetchOpts(r *http.Request, legacy bool) (fetchOpts, error) {
	q := r.URL.Query()
	o := fetchOpts{legacy: legacy, allowRemote: true, wait: defaultWait}
	if v := q.Get("allow_remote"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return o, httputil.InvalidParam("allow_remote must be true or false")
		}
		// The authenticated endpoints have no allow_remote: remote media is always allowed.
		o.allowRemote = b || !legacy
	}
	if v := q.Get("timeout_ms"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			return o, httputil.InvalidParam("timeout_ms must be a non-negative integer")
		}
		o.wait = min(time.Duration(ms)*time.Millisecond, maxWait)
	}
	return o, nil
}

var errNotFound = httputil.NotFound("Media not found")

// resolve finds servable media: it waits for pending uploads, fetches remote
// media not cached yet, and hides quarantined media and, on the legacy
// endpoints, media created after the cut-off.
func (a *API) resolve(ctx context.Context, origin, mediaID string, o fetchOpts) (*storage.Media, error) {
	if !validMediaID(mediaID) || !id.ValidateServerName(origin) {
		return nil, errNotFound
	}
	var m *storage.Media
	var err error
	if origin == a.cfg.ServerName {
		m, err = a.waitLocal(ctx, origin, mediaID, o.wait)
	} else {
		m, err = a.remoteMedia(ctx, origin, mediaID, o.allowRemote)
	}
	if err != nil {
		return nil, err
	}
	if m.QuarantinedBy != "" {
		return nil, errNotFound
	}
	if o.legacy && !time.UnixMilli(m.CreatedTS).Before(a.cfg.Media.LegacyCutoff) {
		// Spec v1.11: new media is served by the authenticated endpoints only.
		return nil, errNotFound
	}
	if now := nowMS(); now-m.LastAccessTS > touchInterval.Milliseconds() {
		if err := a.store.TouchMedia(ctx, m.Origin, m.MediaID, now); err != nil {
			a.log.Warn("update media last access", zap.Error(err))
		}
	}
	return m, nil
}

// waitLocal returns local media, waiting up to wait for a pending upload.
func (a *API) waitLocal(ctx context.Context, origin, mediaID string, wait time.Duration) (*storage.Media, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	poll := time.NewTicker(time.Second) // another process may complete the upload
	defer poll.Stop()
	key := origin + "/" + mediaID
	get := func() (*storage.Media, error) {
		m, err := a.store.GetMedia(ctx, origin, mediaID)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, errNotFound
		}
		if err == nil && m.Pending() && m.ExpiresTS != 0 && m.ExpiresTS <= nowMS() {
			return nil, errNotFound
		}
		return m, err
	}
	for {
		m, err := get()
		if err != nil || !m.Pending() {
			return m, err
		}
		// Subscribe, then look again, so an upload in between is not missed.
		// Only pending IDs get a waiter entry; sweepPending drops expired ones.
		ch := a.uploads.wait(key)
		if m, err := get(); err != nil || !m.Pending() {
			return m, err
		}
		select {
		case <-ch:
		case <-poll.C:
		case <-deadline.C:
			return nil, httputil.Errorf(http.StatusGatewayTimeout, httputil.CodeNotYetUploaded, "Media has not been uploaded yet")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// remoteMedia returns cached remote media, fetching it through the
// RemoteFetcher when it is not cached and allowRemote is set.
func (a *API) remoteMedia(ctx context.Context, origin, mediaID string, allowRemote bool) (*storage.Media, error) {
	m, err := a.store.GetMedia(ctx, origin, mediaID)
	if err == nil && !m.Pending() {
		return m, nil
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if !allowRemote || a.remote == nil {
		return nil, errNotFound
	}
	fctx, cancel := context.WithTimeout(ctx, a.cfg.Media.RemoteFetchTimeout)
	defer cancel()
	rm, err := a.remote.FetchMedia(fctx, origin, mediaID)
	if errors.Is(err, ErrRemoteNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, &httputil.MatrixError{Status: http.StatusBadGateway, Code: httputil.CodeUnknown, Message: "Failed to fetch remote media", Err: err}
	}
	defer rm.Body.Close()
	a.blobMu.RLock()
	defer a.blobMu.RUnlock()
	info, err := a.blobs.Put(fctx, rm.Body, a.cfg.Media.MaxUploadSize)
	if errors.Is(err, blob.ErrTooLarge) {
		return nil, httputil.Errorf(http.StatusBadGateway, httputil.CodeTooLarge, "Remote media is larger than this server accepts")
	}
	if err != nil {
		return nil, &httputil.MatrixError{Status: http.StatusBadGateway, Code: httputil.CodeUnknown, Message: "Failed to fetch remote media", Err: err}
	}
	now := nowMS()
	m = &storage.Media{
		Origin: origin, MediaID: mediaID, ContentType: rm.ContentType, UploadName: rm.FileName,
		Size: info.Size, SHA256: info.SHA256, CreatedTS: now, UploadedTS: now, LastAccessTS: now,
	}
	err = a.store.StoreMedia(ctx, m)
	if errors.Is(err, storage.ErrConflict) { // fetched concurrently
		return a.store.GetMedia(ctx, origin, mediaID)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// download handles GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}].
func (a *API) download(w http.ResponseWriter, r *http.Request, _ *authn.Device) error {
	return a.serveDownload(w, r, false)
}

// legacyDownload handles the unauthenticated GET /_matrix/media/v3/download/....
func (a *API) legacyDownload(w http.ResponseWriter, r *http.Request) error {
	return a.serveDownload(w, r, true)
}

func (a *API) serveDownload(w http.ResponseWriter, r *http.Request, legacy bool) error {
	o, err := parseFetchOpts(r, legacy)
	if err != nil {
		return err
	}
	m, err := a.resolve(r.Context(), httputil.PathVar(r, "serverName"), httputil.PathVar(r, "mediaId"), o)
	if err != nil {
		return err
	}
	obj, err := a.blobs.Open(r.Context(), m.SHA256)
	if err != nil {
		return fmt.Errorf("open media %s/%s: %w", m.Origin, m.MediaID, err)
	}
	defer obj.Close()
	name := m.UploadName
	if n := httputil.PathVar(r, "fileName"); n != "" {
		name = n
	}
	ctype := m.ContentType
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	setMediaHeaders(w.Header(), ctype, name, legacy)
	w.Header().Set("ETag", `"`+m.SHA256+`"`)
	// ServeContent answers Range (206, multipart ranges, 416) and conditional requests.
	http.ServeContent(w, r, "", time.UnixMilli(m.UploadedTS), obj)
	return nil
}

// setMediaHeaders sets the headers that make served media safe to open in a
// browser: the content type, a Content-Disposition that is inline only for
// the spec's list of safe types, a sandboxing CSP, nosniff, and CORP
// cross-origin (web clients on other origins embed media).
func setMediaHeaders(h http.Header, ctype, fileName string, public bool) {
	h.Set("Content-Type", ctype)
	disp := "attachment"
	base, _, err := mime.ParseMediaType(ctype)
	if err == nil && inlineTypes[strings.ToLower(base)] {
		disp = "inline"
	}
	if fileName != "" {
		if v := mime.FormatMediaType(disp, map[string]string{"filename": fileName}); v != "" {
			disp = v
		}
	}
	h.Set("Content-Disposition", disp)
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	if public {
		h.Set("Cache-Control", "public, max-age=86400, s-maxage=86400")
	} else {
		h.Set("Cache-Control", "private, max-age=86400")
	}
}

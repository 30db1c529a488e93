package mediaapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/mediaapi/thumbnail"
	"parley/mediaapi/urlpreview"
	"parley/storage"
)

// previewURL handles GET /_matrix/client/v1/media/preview_url (and the
// legacy /_matrix/media/v3/preview_url): OpenGraph data of a web page, with
// its image stored as local media. Answers are cached for
// url_preview.cache_duration.
func (a *API) previewURL(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	raw := r.URL.Query().Get("url")
	if raw == "" {
		return httputil.MissingParam("Missing url")
	}
	u, err := url.Parse(raw)
	if err != nil || urlpreview.CheckURL(u) != nil {
		return httputil.InvalidParam("url must be an absolute http or https URL")
	}
	u.Fragment, u.RawFragment = "", ""
	key := u.String()
	ctx := r.Context()
	now := nowMS()
	if og, err := a.store.GetURLPreview(ctx, key, now); err == nil {
		return httputil.WriteRawJSON(w, http.StatusOK, og)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	resp, err := a.preview.Fetch(ctx, u)
	if err != nil {
		return previewError(err)
	}
	var og map[string]any
	switch {
	case strings.HasPrefix(resp.ContentType, "image/"):
		og = map[string]any{}
		a.attachImage(ctx, og, resp)
	case resp.ContentType == "text/html" || resp.ContentType == "application/xhtml+xml":
		og = urlpreview.ParseHTML(resp.Body, "text/html; charset="+resp.Charset, resp.URL)
		if img, ok := og["og:image"].(string); ok {
			delete(og, "og:image")
			if iu, err := url.Parse(img); err == nil {
				if ir, err := a.preview.Fetch(ctx, iu); err == nil && strings.HasPrefix(ir.ContentType, "image/") {
					a.attachImage(ctx, og, ir)
				}
			}
		}
	default:
		og = map[string]any{}
	}
	body, err := json.Marshal(og)
	if err != nil {
		return err
	}
	if err := a.store.StoreURLPreview(ctx, key, body, now, now+a.cfg.Media.URLPreview.CacheDuration.Milliseconds()); err != nil {
		a.log.Warn("cache url preview", zap.Error(err))
	}
	return httputil.WriteRawJSON(w, http.StatusOK, body)
}

// previewError maps fetch failures to the answers Synapse gives.
func previewError(err error) error {
	switch {
	case errors.Is(err, urlpreview.ErrBlocked):
		return &httputil.MatrixError{Status: http.StatusForbidden, Code: httputil.CodeForbidden, Message: "URL blocked: it resolves to a denied IP range", Err: err}
	case errors.Is(err, urlpreview.ErrTooLarge):
		return &httputil.MatrixError{Status: http.StatusBadGateway, Code: httputil.CodeTooLarge, Message: "The requested content is too large", Err: err}
	case errors.Is(err, urlpreview.ErrBadURL):
		return httputil.InvalidParam("url cannot be previewed")
	}
	return &httputil.MatrixError{Status: http.StatusBadGateway, Code: httputil.CodeUnknown, Message: "Failed to fetch the URL", Err: err}
}

// attachImage stores a fetched image as local media and sets og:image to
// its mxc:// URI, with matrix:image:size, og:image:type and dimensions.
func (a *API) attachImage(ctx context.Context, og map[string]any, img *urlpreview.Response) {
	m, err := a.storeBytes(ctx, img.Body, img.ContentType, "")
	if err != nil {
		a.log.Warn("store url preview image", zap.Error(err))
		return
	}
	og["og:image"] = a.mxc(m.MediaID)
	og["og:image:type"] = img.ContentType
	og["matrix:image:size"] = m.Size
	if w, h, ok := thumbnail.IsImage(img.Body); ok {
		og["og:image:width"], og["og:image:height"] = w, h
	}
}

// storeBytes stores small content (URL preview images) as local media with no uploader.
func (a *API) storeBytes(ctx context.Context, b []byte, ctype, name string) (*storage.Media, error) {
	a.blobMu.RLock()
	defer a.blobMu.RUnlock()
	info, err := a.blobs.Put(ctx, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	now := nowMS()
	m := &storage.Media{
		Origin: a.cfg.ServerName, MediaID: newMediaID(), ContentType: ctype, UploadName: name,
		Size: info.Size, SHA256: info.SHA256, CreatedTS: now, UploadedTS: now, LastAccessTS: now,
	}
	if err := a.store.StoreMedia(ctx, m); err != nil {
		return nil, fmt.Errorf("store media: %w", err)
	}
	return m, nil
}

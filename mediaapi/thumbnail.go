package mediaapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/mediaapi/thumbnail"
	"parley/storage"
)

// maxThumbnailDimension bounds requested thumbnail sizes.
const maxThumbnailDimension = 10000

// maxAnimatedWork bounds frames × pixels of a GIF animated thumbnail (about
// 40 frames of 1000×1000); larger animations get a still thumbnail.
const maxAnimatedWork = 40_000_000

type thumbRequest struct {
	width, height int
	method        string
	animated      bool
}

func parseThumbRequest(r *http.Request) (thumbRequest, error) {
	q := r.URL.Query()
	var t thumbRequest
	for _, p := range []struct {
		name string
		dst  *int
	}{{"width", &t.width}, {"height", &t.height}} {
		v := q.Get(p.name)
		if v == "" {
			return t, httputil.MissingParam("Missing %s", p.name)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxThumbnailDimension {
			return t, httputil.InvalidParam("%s must be an integer between 1 and %d", p.name, maxThumbnailDimension)
		}
		*p.dst = n
	}
	t.method = q.Get("method")
	switch t.method {
	case "":
		t.method = thumbnail.Scale
	case thumbnail.Scale, thumbnail.Crop:
	default:
		return t, httputil.InvalidParam("method must be crop or scale")
	}
	if v := q.Get("animated"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return t, httputil.InvalidParam("animated must be true or false")
		}
		t.animated = b
	}
	return t, nil
}

// thumbnail handles GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}.
func (a *API) thumbnail(w http.ResponseWriter, r *http.Request, _ *authn.Device) error {
	return a.serveThumbnail(w, r, false)
}

// legacyThumbnail handles the unauthenticated GET /_matrix/media/v3/thumbnail/....
func (a *API) legacyThumbnail(w http.ResponseWriter, r *http.Request) error {
	return a.serveThumbnail(w, r, true)
}

func (a *API) serveThumbnail(w http.ResponseWriter, r *http.Request, legacy bool) error {
	o, err := parseFetchOpts(r, legacy)
	if err != nil {
		return err
	}
	req, err := parseThumbRequest(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	m, err := a.resolve(ctx, httputil.PathVar(r, "serverName"), httputil.PathVar(r, "mediaId"), o)
	if err != nil {
		return err
	}
	// Only GIFs are animated cheaply; for other content animated=true means false.
	req.animated = req.animated && strings.EqualFold(m.ContentType, "image/gif")
	th, err := a.findThumbnail(ctx, m, req)
	if err != nil {
		return err
	}
	obj, err := a.blobs.Open(ctx, th.SHA256)
	if err != nil {
		return fmt.Errorf("open thumbnail of %s/%s: %w", m.Origin, m.MediaID, err)
	}
	defer obj.Close()
	ext := strings.TrimPrefix(th.ContentType, "image/")
	setMediaHeaders(w.Header(), th.ContentType, "thumbnail."+ext, legacy)
	http.ServeContent(w, r, "", time.UnixMilli(th.CreatedTS), obj)
	return nil
}

// findThumbnail returns the cached thumbnail for the request, or the closest
// pre-generated one when dynamic thumbnails are off, or generates and caches one.
func (a *API) findThumbnail(ctx context.Context, m *storage.Media, req thumbRequest) (*storage.Thumbnail, error) {
	th, err := a.store.GetThumbnail(ctx, m.Origin, m.MediaID, req.width, req.height, req.method, req.animated)
	if err == nil {
		return th, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if !a.cfg.Media.DynamicThumbnails {
		list, err := a.store.Thumbnails(ctx, m.Origin, m.MediaID)
		if err != nil {
			return nil, err
		}
		if best := closest(list, req); best != nil {
			return best, nil
		}
	}
	return a.generate(ctx, m, req)
}

// closest picks, among thumbnails with the requested method (and not
// animated), the smallest at least as large as requested, else the largest.
func closest(list []storage.Thumbnail, req thumbRequest) *storage.Thumbnail {
	var best, largest *storage.Thumbnail
	for i := range list {
		t := &list[i]
		if t.Method != req.method || t.Animated {
			continue
		}
		if largest == nil || t.ActualWidth*t.ActualHeight > largest.ActualWidth*largest.ActualHeight {
			largest = t
		}
		if t.ActualWidth >= req.width && t.ActualHeight >= req.height &&
			(best == nil || t.ActualWidth*t.ActualHeight < best.ActualWidth*best.ActualHeight) {
			best = t
		}
	}
	if best != nil {
		return best
	}
	return largest
}

func (a *API) limits() thumbnail.Limits {
	return thumbnail.Limits{MaxPixels: a.cfg.Media.MaxImagePixels, MaxAnimatedWork: maxAnimatedWork}
}

// thumbTooLarge is 413 for local media and 502 for remote media, as the spec lists.
func (a *API) thumbTooLarge(m *storage.Media) error {
	status := http.StatusRequestEntityTooLarge
	if m.Origin != a.cfg.ServerName {
		status = http.StatusBadGateway
	}
	return httputil.Errorf(status, httputil.CodeTooLarge, "Content is too large to thumbnail")
}

var errCannotThumbnail = httputil.Errorf(http.StatusBadRequest, httputil.CodeUnknown, "Cannot generate thumbnails for the requested content")

// generate makes the thumbnail for req, stores and returns it.
func (a *API) generate(ctx context.Context, m *storage.Media, req thumbRequest) (*storage.Thumbnail, error) {
	if m.Size > a.cfg.Media.MaxThumbnailSourceSize {
		return nil, a.thumbTooLarge(m)
	}
	src, err := a.decode(ctx, m, req.animated)
	switch {
	case errors.Is(err, thumbnail.ErrUnsupported):
		return nil, errCannotThumbnail
	case errors.Is(err, thumbnail.ErrTooLarge):
		return nil, a.thumbTooLarge(m)
	case err != nil:
		return nil, err
	}
	return a.storeThumbnail(ctx, m, src, req)
}

func (a *API) decode(ctx context.Context, m *storage.Media, animated bool) (*thumbnail.Source, error) {
	obj, err := a.blobs.Open(ctx, m.SHA256)
	if err != nil {
		return nil, fmt.Errorf("open media %s/%s: %w", m.Origin, m.MediaID, err)
	}
	defer obj.Close()
	return thumbnail.Decode(obj, animated, a.limits())
}

func (a *API) storeThumbnail(ctx context.Context, m *storage.Media, src *thumbnail.Source, req thumbRequest) (*storage.Thumbnail, error) {
	res, err := src.Thumbnail(req.width, req.height, req.method, req.animated)
	if err != nil {
		return nil, fmt.Errorf("thumbnail %s/%s: %w", m.Origin, m.MediaID, err)
	}
	a.blobMu.RLock()
	defer a.blobMu.RUnlock()
	info, err := a.blobs.Put(ctx, bytes.NewReader(res.Data), int64(len(res.Data)))
	if err != nil {
		return nil, fmt.Errorf("store thumbnail: %w", err)
	}
	th := storage.Thumbnail{
		Origin: m.Origin, MediaID: m.MediaID, Width: req.width, Height: req.height, Method: req.method,
		Animated: req.animated, ContentType: res.ContentType, Size: info.Size, SHA256: info.SHA256,
		ActualWidth: res.Width, ActualHeight: res.Height, CreatedTS: nowMS(),
	}
	freed, err := a.store.StoreThumbnail(ctx, th)
	if err != nil {
		return nil, fmt.Errorf("store thumbnail: %w", err)
	}
	if freed != "" {
		// A replaced thumbnail's blob can only be freed under the write lock.
		go func() {
			a.blobMu.Lock()
			defer a.blobMu.Unlock()
			a.deleteBlobs(context.WithoutCancel(ctx), []string{freed})
		}()
	}
	return &th, nil
}

// pregenerate makes the configured thumbnail sizes of a new upload that is
// an image; failures are logged, never failing the upload.
func (a *API) pregenerate(ctx context.Context, m *storage.Media) {
	if len(a.cfg.Media.ThumbnailSizes) == 0 || m.Size > a.cfg.Media.MaxThumbnailSourceSize || m.QuarantinedBy != "" {
		return
	}
	src, err := a.decode(ctx, m, false)
	if err != nil {
		if !errors.Is(err, thumbnail.ErrUnsupported) {
			a.log.Debug("no thumbnails for upload", zap.String("media_id", m.MediaID), zap.Error(err))
		}
		return
	}
	for _, s := range a.cfg.Media.ThumbnailSizes {
		req := thumbRequest{width: s.Width, height: s.Height, method: s.Method}
		if _, err := a.storeThumbnail(ctx, m, src, req); err != nil {
			a.log.Warn("pre-generate thumbnail", zap.String("media_id", m.MediaID), zap.Error(err))
			return
		}
	}
}

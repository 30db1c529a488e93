package mediaapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"parley/internal/httputil"
	"parley/mediaapi/thumbnail"
	"parley/storage"
)

// ErrNotFound is returned by LocalMedia and LocalThumbnail for media that
// does not exist, is not uploaded yet or is quarantined.
var ErrNotFound = errors.New("media not found")

// ErrCannotThumbnail is returned by LocalThumbnail for content that is not
// an image that can be thumbnailed, or is too large to.
var ErrCannotThumbnail = errors.New("cannot thumbnail this media")

// Content is media opened for serving. The caller closes Body.
type Content struct {
	ContentType string // never empty
	FileName    string // empty when none was given
	Size        int64
	Body        io.ReadSeekCloser
}

// LocalMedia opens local media for the federation API
// (GET /_matrix/federation/v1/media/download/{mediaId}).
func (a *API) LocalMedia(ctx context.Context, mediaID string) (*Content, error) {
	m, err := a.localServable(ctx, mediaID)
	if err != nil {
		return nil, err
	}
	obj, err := a.blobs.Open(ctx, m.SHA256)
	if err != nil {
		return nil, fmt.Errorf("open media %s: %w", mediaID, err)
	}
	ctype := m.ContentType
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	return &Content{ContentType: ctype, FileName: m.UploadName, Size: obj.Size(), Body: obj}, nil
}

// LocalThumbnail returns a thumbnail of local media for the federation API
// (GET /_matrix/federation/v1/media/thumbnail/{mediaId}); method is "crop" or "scale".
func (a *API) LocalThumbnail(ctx context.Context, mediaID string, width, height int, method string, animated bool) (*Content, error) {
	if width < 1 || height < 1 || width > maxThumbnailDimension || height > maxThumbnailDimension ||
		(method != thumbnail.Crop && method != thumbnail.Scale) {
		return nil, ErrCannotThumbnail
	}
	m, err := a.localServable(ctx, mediaID)
	if err != nil {
		return nil, err
	}
	req := thumbRequest{width: width, height: height, method: method, animated: animated && m.ContentType == "image/gif"}
	th, err := a.findThumbnail(ctx, m, req)
	var merr *httputil.MatrixError
	if errors.As(err, &merr) && merr.Status < http.StatusInternalServerError {
		return nil, ErrCannotThumbnail
	}
	if err != nil {
		return nil, err
	}
	obj, err := a.blobs.Open(ctx, th.SHA256)
	if err != nil {
		return nil, fmt.Errorf("open thumbnail of %s: %w", mediaID, err)
	}
	return &Content{ContentType: th.ContentType, Size: obj.Size(), Body: obj}, nil
}

func (a *API) localServable(ctx context.Context, mediaID string) (*storage.Media, error) {
	if !validMediaID(mediaID) {
		return nil, ErrNotFound
	}
	m, err := a.store.GetMedia(ctx, a.cfg.ServerName, mediaID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if m.Pending() || m.QuarantinedBy != "" {
		return nil, ErrNotFound
	}
	return m, nil
}

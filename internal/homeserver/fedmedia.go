package homeserver

import (
	"context"
	"errors"

	"parley/federation"
	"parley/mediaapi"
)

// fedLocalMedia lets the federation API serve the media repository's local media.
type fedLocalMedia struct{ m *mediaapi.API }

func (f fedLocalMedia) convert(c *mediaapi.Content, err error) (*federation.MediaContent, error) {
	switch {
	case errors.Is(err, mediaapi.ErrNotFound):
		return nil, federation.ErrMediaNotFound
	case errors.Is(err, mediaapi.ErrCannotThumbnail):
		return nil, federation.ErrCannotThumbnail
	case err != nil:
		return nil, err
	}
	return &federation.MediaContent{ContentType: c.ContentType, FileName: c.FileName, Size: c.Size, Body: c.Body}, nil
}

// Download implements federation.LocalMedia.
func (f fedLocalMedia) Download(ctx context.Context, mediaID string) (*federation.MediaContent, error) {
	return f.convert(f.m.LocalMedia(ctx, mediaID))
}

// Thumbnail implements federation.LocalMedia.
func (f fedLocalMedia) Thumbnail(ctx context.Context, mediaID string, width, height int, method string, animated bool) (*federation.MediaContent, error) {
	return f.convert(f.m.LocalThumbnail(ctx, mediaID, width, height, method, animated))
}

// fedRemoteMedia lets the media repository fetch remote media over federation.
type fedRemoteMedia struct{ f *federation.MediaFetcher }

// FetchMedia implements mediaapi.RemoteFetcher.
func (r fedRemoteMedia) FetchMedia(ctx context.Context, origin, mediaID string) (*mediaapi.RemoteMedia, error) {
	ct, name, body, err := r.f.Fetch(ctx, origin, mediaID)
	if errors.Is(err, federation.ErrRemoteMediaNotFound) {
		return nil, mediaapi.ErrRemoteNotFound
	} else if err != nil {
		return nil, err
	}
	return &mediaapi.RemoteMedia{ContentType: ct, FileName: name, Body: body}, nil
}

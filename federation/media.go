package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"

	"parley/internal/httputil"
)

// Errors a LocalMedia returns.
var (
	// ErrMediaNotFound: no such local media (or quarantined, or not uploaded yet).
	ErrMediaNotFound = errors.New("media not found")
	// ErrCannotThumbnail: the media cannot be thumbnailed with the parameters asked.
	ErrCannotThumbnail = errors.New("cannot thumbnail media")
)

// MediaContent is local media opened for serving; the caller closes Body.
type MediaContent struct {
	ContentType string
	FileName    string
	Size        int64
	Body        io.ReadCloser
}

// LocalMedia serves this server's media to other servers (the media repository implements it through an adapter).
type LocalMedia interface {
	// Download opens local media.
	Download(ctx context.Context, mediaID string) (*MediaContent, error)
	// Thumbnail returns a thumbnail of local media.
	Thumbnail(ctx context.Context, mediaID string, width, height int, method string, animated bool) (*MediaContent, error)
}

// mediaDownload handles GET /_matrix/federation/v1/media/download/{mediaID}.
func (a *API) mediaDownload(w http.ResponseWriter, r *http.Request) error {
	if a.d.Media == nil {
		return httputil.NotFound("media not found")
	}
	c, err := a.d.Media.Download(r.Context(), httputil.PathVar(r, "mediaID"))
	if err != nil {
		return mediaErr(err)
	}
	return writeMultipartMedia(w, c)
}

// mediaThumbnail handles GET /_matrix/federation/v1/media/thumbnail/{mediaID}.
func (a *API) mediaThumbnail(w http.ResponseWriter, r *http.Request) error {
	if a.d.Media == nil {
		return httputil.NotFound("media not found")
	}
	q := r.URL.Query()
	width, err1 := strconv.Atoi(q.Get("width"))
	height, err2 := strconv.Atoi(q.Get("height"))
	if err1 != nil || err2 != nil {
		return httputil.MissingParam("width and height are required integers")
	}
	method := q.Get("method")
	if method == "" {
		method = "scale"
	}
	if method != "scale" && method != "crop" {
		return httputil.InvalidParam("method must be crop or scale")
	}
	c, err := a.d.Media.Thumbnail(r.Context(), httputil.PathVar(r, "mediaID"), width, height, method, q.Get("animated") == "true")
	if err != nil {
		return mediaErr(err)
	}
	return writeMultipartMedia(w, c)
}

func mediaErr(err error) error {
	switch {
	case errors.Is(err, ErrMediaNotFound):
		return httputil.NotFound("media not found")
	case errors.Is(err, ErrCannotThumbnail):
		return httputil.Errorf(http.StatusBadRequest, "M_UNKNOWN", "cannot generate a thumbnail of this media")
	}
	return err
}

// writeMultipartMedia writes the spec's multipart/mixed answer: a JSON
// metadata part ({}), then the content with its type and disposition.
func writeMultipartMedia(w http.ResponseWriter, c *MediaContent) error {
	defer c.Body.Close()
	mw := multipart.NewWriter(w)
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	w.WriteHeader(http.StatusOK)
	meta, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
	if err != nil {
		return nil
	}
	_, _ = meta.Write([]byte("{}"))
	h := textproto.MIMEHeader{"Content-Type": {c.ContentType}}
	if c.FileName != "" {
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": c.FileName}))
	}
	part, err := mw.CreatePart(h)
	if err != nil {
		return nil
	}
	_, _ = io.Copy(part, c.Body)
	_ = mw.Close()
	return nil
}

// MediaFetcher downloads media from other servers over signed federation requests.
type MediaFetcher struct {
	c *federation.Client
}

// NewMediaFetcher wraps a federation client.
func NewMediaFetcher(c *federation.Client) *MediaFetcher { return &MediaFetcher{c: c} }

// ErrRemoteMediaNotFound is returned when the origin answers 404 for the media.
var ErrRemoteMediaNotFound = errors.New("remote media not found")

// Fetch downloads origin's media mediaID. It returns the content type,
// file name and body (closed by the caller).
func (m *MediaFetcher) Fetch(ctx context.Context, origin, mediaID string) (string, string, io.ReadCloser, error) {
	_, resp, err := m.c.MakeFullRequest(ctx, federation.RequestParams{
		ServerName: origin, Method: http.MethodGet, Path: federation.URLPath{"v1", "media", "download", mediaID},
		Authenticate: true, DontReadBody: true,
	})
	if err != nil {
		var herr mautrix.HTTPError
		// A 404, or a server that cannot be reached at all (no such server),
		// is "not found" for clients: the spec lists no other answer for it.
		if errors.As(err, &herr) && (herr.Response == nil || herr.Response.StatusCode == http.StatusNotFound) {
			return "", "", nil, fmt.Errorf("%w: %v", ErrRemoteMediaNotFound, err)
		}
		return "", "", nil, err
	}
	ok := false
	defer func() {
		if !ok {
			resp.Body.Close()
		}
	}()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return "", "", nil, fmt.Errorf("media download from %s: not multipart/mixed", origin)
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	meta, err := mr.NextPart()
	if err != nil {
		return "", "", nil, fmt.Errorf("media metadata part: %w", err)
	}
	var discard map[string]any
	if err := json.NewDecoder(io.LimitReader(meta, 64<<10)).Decode(&discard); err != nil {
		return "", "", nil, fmt.Errorf("media metadata: %w", err)
	}
	part, err := mr.NextPart()
	if err != nil {
		return "", "", nil, fmt.Errorf("media content part: %w", err)
	}
	if loc := part.Header.Get("Location"); loc != "" {
		return "", "", nil, fmt.Errorf("media redirects are not followed (%s)", strings.SplitN(loc, "?", 2)[0])
	}
	name := ""
	if _, p, err := mime.ParseMediaType(part.Header.Get("Content-Disposition")); err == nil {
		name = p["filename"]
	}
	ct := part.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	ok = true
	return ct, name, &partBody{Reader: part, closer: resp.Body}, nil
}

type partBody struct {
	io.Reader
	closer io.Closer
}

func (p *partBody) Close() error { return p.closer.Close() }

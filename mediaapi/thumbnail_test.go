package mediaapi_test

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"net/http"
	"strings"
	"testing"

	_ "golang.org/x/image/webp"

	"parley/internal/config"
	"parley/mediaapi/internal/testimg"
)

func TestThumbnailsOfEachFormat(t *testing.T) {
	srv := newServer(t)
	alice := srv.Register(t, "alice")
	formats := []struct {
		name, ctype string
		data        []byte
		thumbType   string // for a static thumbnail
	}{
		{"jpeg", "image/jpeg", testimg.JPEG(400, 300), "image/jpeg"},
		{"png", "image/png", testimg.PNG(400, 300), "image/png"},
		{"gif", "image/gif", testimg.GIF(400, 300, 3), "image/png"},
		{"webp", "image/webp", testimg.WebP(400, 300, color.NRGBA{200, 10, 10, 255}), "image/png"},
	}
	sizes := []struct {
		query string
		w, h  int
	}{
		{"width=64&height=64&method=scale", 64, 48},
		{"width=64&height=64", 64, 48}, // scale is the default
		{"width=32&height=32&method=crop", 32, 32},
		{"width=100&height=50&method=crop", 100, 50},
		{"width=320&height=240&method=scale", 320, 240},
		{"width=1000&height=1000&method=scale", 400, 300}, // never upscaled
		{"width=1000&height=1000&method=crop", 300, 300},
		{"width=57&height=91&method=crop", 57, 91}, // on demand, not a pre-generated size
	}
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			media := upload(t, alice, f.data, f.ctype, "img")
			for _, s := range sizes {
				r := do(t, alice, http.MethodGet, "/_matrix/client/v1/media/thumbnail/"+media+"?"+s.query, nil)
				expect(t, r, http.StatusOK, "")
				cfg, format, err := image.DecodeConfig(bytes.NewReader(r.body))
				if err != nil {
					t.Fatalf("%s: thumbnail does not decode: %v", s.query, err)
				}
				if cfg.Width != s.w || cfg.Height != s.h {
					t.Errorf("%s: got %dx%d, want %dx%d", s.query, cfg.Width, cfg.Height, s.w, s.h)
				}
				if ct := r.header.Get("Content-Type"); ct != f.thumbType || "image/"+format != ct {
					t.Errorf("%s: Content-Type %q, data is %s, want %s", s.query, ct, format, f.thumbType)
				}
				if d := r.header.Get("Content-Disposition"); !strings.HasPrefix(d, "inline; filename=thumbnail.") {
					t.Errorf("%s: Content-Disposition %q", s.query, d)
				}
			}
		})
	}
}

func TestThumbnailsPregeneratedAndCached(t *testing.T) {
	srv := newServer(t)
	alice := srv.Register(t, "alice")
	media := upload(t, alice, testimg.PNG(1000, 800), "image/png", "")
	mediaID := strings.TrimPrefix(media, "hs1.test/")
	list, err := srv.HS.Store.Thumbnails(t.Context(), "hs1.test", mediaID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, th := range list {
		got[fmt.Sprintf("%dx%d %s", th.Width, th.Height, th.Method)] = fmt.Sprintf("%dx%d", th.ActualWidth, th.ActualHeight)
	}
	want := map[string]string{"32x32 crop": "32x32", "96x96 crop": "96x96", "320x240 scale": "300x240", "640x480 scale": "600x480", "800x600 scale": "750x600"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pre-generated %v, want %v", got, want)
	}
	// An on-demand size is cached: a second request is served from the store.
	do(t, alice, http.MethodGet, "/_matrix/client/v1/media/thumbnail/"+media+"?width=50&height=70&method=crop", nil)
	th, err := srv.HS.Store.GetThumbnail(t.Context(), "hs1.test", mediaID, 50, 70, "crop", false)
	if err != nil || th.ActualWidth != 50 || th.ActualHeight != 70 {
		t.Fatalf("cached thumbnail %+v, %v", th, err)
	}
	r := do(t, alice, http.MethodGet, "/_matrix/client/v1/media/thumbnail/"+media+"?width=50&height=70&method=crop", nil)
	if r.header.Get("Last-Modified") == "" || r.status != http.StatusOK {
		t.Fatalf("cached thumbnail: %d", r.status)
	}
	// A non-image upload gets no thumbnails.
	doc := upload(t, alice, []byte("%PDF-1.4"), "application/pdf", "")
	if l, _ := srv.HS.Store.Thumbnails(t.Context(), "hs1.test", strings.TrimPrefix(doc, "hs1.test/")); len(l) != 0 {
		t.Fatalf("%d thumbnails of a PDF", len(l))
	}
}

func TestThumbnailsWithoutDynamic(t *testing.T) {
	srv := newServer(t, func(c *config.Config) { c.Media.DynamicThumbnails = false })
	alice := srv.Register(t, "alice")
	media := upload(t, alice, testimg.JPEG(1000, 800), "image/jpeg", "")
	cases := []struct {
		query string
		w, h  int
	}{
		{"width=50&height=50&method=crop", 96, 96},        // smallest pre-generated crop at least as large
		{"width=500&height=300&method=scale", 600, 480},   // 640x480 scale of a 1000x800 image
		{"width=2000&height=2000&method=scale", 750, 600}, // none large enough: the largest
	}
	for _, c := range cases {
		r := do(t, alice, http.MethodGet, "/_matrix/client/v1/media/thumbnail/"+media+"?"+c.query, nil)
		expect(t, r, http.StatusOK, "")
		cfg, _, err := image.DecodeConfig(bytes.NewReader(r.body))
		if err != nil || cfg.Width != c.w || cfg.Height != c.h {
			t.Errorf("%s: got %dx%d (%v), want %dx%d", c.query, cfg.Width, cfg.Height, err, c.w, c.h)
		}
	}
}

func TestAnimatedThumbnail(t *testing.T) {
	srv := newServer(t)
	alice := srv.Register(t, "alice")
	media := upload(t, alice, testimg.GIF(200, 100, 4), "image/gif", "")
	r := do(t, alice, http.MethodGet, "/_matrix/client/v1/media/thumbnail/"+media+"?width=64&height=64&animated=true", nil)
	expect(t, r, http.StatusOK, "")
	g, err := gif.DecodeAll(bytes.NewReader(r.body))
	if err != nil || len(g.Image) != 4 || g.Config.Width != 64 || g.Config.Height != 32 || r.header.Get("Content-Type") != "image/gif" {
		t.Fatalf("animated thumbnail: %v, %s", err, r.header.Get("Content-Type"))
	}
	// animated=false must not animate.
	r = do(t, alice, http.MethodGet, "/_matrix/client/v1/media/thumbnail/"+media+"?width=64&height=64&animated=false", nil)
	if r.header.Get("Content-Type") != "image/png" {
		t.Fatalf("animated=false gave %s", r.header.Get("Content-Type"))
	}
	// animated=true of a still image behaves as false.
	still := upload(t, alice, testimg.JPEG(200, 100), "image/jpeg", "")
	r = do(t, alice, http.MethodGet, "/_matrix/client/v1/media/thumbnail/"+still+"?width=64&height=64&animated=true", nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("animated=true of a JPEG: %d %s", r.status, r.header.Get("Content-Type"))
	}
}

func TestThumbnailErrors(t *testing.T) {
	srv := newServer(t, func(c *config.Config) { c.Media.MaxImagePixels = 100 * 100 })
	alice := srv.Register(t, "alice")
	small := upload(t, alice, testimg.PNG(100, 100), "image/png", "")
	big := upload(t, alice, testimg.PNG(101, 100), "image/png", "")
	doc := upload(t, alice, []byte("just text, not an image"), "image/png", "")
	base := "/_matrix/client/v1/media/thumbnail/"
	cases := []struct {
		path    string
		status  int
		errcode string
	}{
		{small + "?height=32", 400, "M_MISSING_PARAM"},
		{small + "?width=32", 400, "M_MISSING_PARAM"},
		{small + "?width=-1&height=32", 400, "M_INVALID_PARAM"},
		{small + "?width=abc&height=32", 400, "M_INVALID_PARAM"},
		{small + "?width=32&height=32&method=stretch", 400, "M_INVALID_PARAM"},
		{small + "?width=32&height=32&animated=maybe", 400, "M_INVALID_PARAM"},
		{big + "?width=32&height=32", 413, "M_TOO_LARGE"},
		{doc + "?width=32&height=32", 400, "M_UNKNOWN"},
		{"hs1.test/missing?width=32&height=32", 404, "M_NOT_FOUND"},
		{small + "?width=32&height=32", 200, ""},
	}
	for _, c := range cases {
		expect(t, do(t, alice, http.MethodGet, base+c.path, nil), c.status, c.errcode)
	}
}

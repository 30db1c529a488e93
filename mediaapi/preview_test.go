package mediaapi_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"parley/internal/config"
	"parley/internal/testserver"
)

func enablePreviews(allow ...string) testserver.Option {
	return func(c *config.Config) {
		c.Media.URLPreview.Enabled = true
		c.Media.URLPreview.IPRangeAllowlist = allow
	}
}

func preview(t testing.TB, c *testserver.Client, target string) *response {
	t.Helper()
	return do(t, c, http.MethodGet, "/_matrix/client/v1/media/preview_url?url="+url.QueryEscape(target), nil)
}

// site is a web page with OpenGraph tags and an image, counting requests.
func site(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	img := testPNG()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/post":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, `<!doctype html><html><head><title>ignored</title>
				<meta property="og:title" content="Matrix Blog Post">
				<meta property="og:description" content="A really cool post">
				<meta property="og:type" content="article">
				<meta property="og:image" content="/img.png"></head><body>hi</body></html>`)
		case "/img.png":
			w.Header().Set("Content-Type", "image/png")
			w.Write(img)
		case "/plain":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, `<html><head><title>Just a title</title><meta name="description" content="desc"></head></html>`)
		case "/big":
			w.Header().Set("Content-Type", "text/html")
			w.Write(bytes.Repeat([]byte("x"), 5000))
		case "/slow":
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/iam/", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(ts.Close)
	return ts, &hits
}

func TestPreviewOpenGraph(t *testing.T) {
	ts, hits := site(t)
	srv := newServer(t, enablePreviews("127.0.0.1"))
	alice := srv.Register(t, "alice")

	r := preview(t, alice, ts.URL+"/post#fragment")
	expect(t, r, http.StatusOK, "")
	for k, v := range map[string]any{
		"og:title": "Matrix Blog Post", "og:description": "A really cool post", "og:type": "article",
		"og:image:type": "image/png", "og:image:width": float64(400), "og:image:height": float64(300),
		"matrix:image:size": float64(len(testPNG())),
	} {
		if r.json[k] != v {
			t.Errorf("%s = %v, want %v", k, r.json[k], v)
		}
	}
	mxc, _ := r.json["og:image"].(string)
	img := download(t, alice, mxc[len("mxc://"):])
	if img.status != http.StatusOK || !bytes.Equal(img.body, testPNG()) {
		t.Fatalf("og:image %q not served as the original image: %d", mxc, img.status)
	}
	if hits.Load() != 2 {
		t.Fatalf("%d requests to the site, want 2 (page and image)", hits.Load())
	}
	// Cached: no new request, same answer (the fragment is not part of the key).
	r2 := preview(t, alice, ts.URL+"/post")
	if !bytes.Equal(r2.body, r.body) || hits.Load() != 2 {
		t.Fatalf("second preview not from cache: %d requests", hits.Load())
	}
	r = preview(t, alice, ts.URL+"/plain")
	if r.json["og:title"] != "Just a title" || r.json["og:description"] != "desc" {
		t.Fatalf("fallbacks: %s", r.body)
	}
	// The legacy path serves previews too, with authentication.
	expect(t, do(t, alice, http.MethodGet, "/_matrix/media/v3/preview_url?url="+url.QueryEscape(ts.URL+"/plain"), nil), http.StatusOK, "")
	expect(t, do(t, srv.Anon(), http.MethodGet, "/_matrix/client/v1/media/preview_url?url="+url.QueryEscape(ts.URL+"/plain"), nil), http.StatusUnauthorized, "M_MISSING_TOKEN")
}

func TestPreviewImageURL(t *testing.T) {
	ts, _ := site(t)
	srv := newServer(t, enablePreviews("127.0.0.1"))
	alice := srv.Register(t, "alice")
	r := preview(t, alice, ts.URL+"/img.png")
	expect(t, r, http.StatusOK, "")
	if r.json["og:image:width"] != float64(400) || r.json["matrix:image:size"] != float64(len(testPNG())) {
		t.Fatalf("image preview: %s", r.body)
	}
}

func TestPreviewSSRFRefused(t *testing.T) {
	ts, hits := site(t)
	srv := newServer(t, enablePreviews()) // default denylist, nothing allowed
	alice := srv.Register(t, "alice")
	port := ts.Listener.Addr().(*net.TCPAddr).Port
	for _, target := range []string{
		ts.URL + "/post",
		fmt.Sprintf("http://localhost:%d/post", port),
		fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/post", port),
		"http://169.254.169.254/latest/meta-data/",
	} {
		start := time.Now()
		expect(t, preview(t, alice, target), http.StatusForbidden, "M_FORBIDDEN")
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: refusal took %v", target, d)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the loopback site was reached %d times", hits.Load())
	}
	// Allowed site redirecting to the metadata address: refused at the redirect.
	srv2 := newServer(t, enablePreviews("127.0.0.1"))
	bob := srv2.Register(t, "bob")
	expect(t, preview(t, bob, ts.URL+"/to-metadata"), http.StatusForbidden, "M_FORBIDDEN")
}

func TestPreviewLimitsAndErrors(t *testing.T) {
	ts, _ := site(t)
	srv := newServer(t, enablePreviews("127.0.0.1"), func(c *config.Config) {
		c.Media.URLPreview.MaxSize = 4000
		c.Media.URLPreview.Timeout = 300 * time.Millisecond
	})
	alice := srv.Register(t, "alice")
	expect(t, preview(t, alice, ts.URL+"/big"), http.StatusBadGateway, "M_TOO_LARGE")
	start := time.Now()
	expect(t, preview(t, alice, ts.URL+"/slow"), http.StatusBadGateway, "M_UNKNOWN")
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("slow site took %v with a 300ms timeout", d)
	}
	expect(t, preview(t, alice, ts.URL+"/missing"), http.StatusBadGateway, "M_UNKNOWN")
	expect(t, do(t, alice, http.MethodGet, "/_matrix/client/v1/media/preview_url", nil), http.StatusBadRequest, "M_MISSING_PARAM")
	for _, bad := range []string{"file:///etc/passwd", "ftp://example.org/", "/relative", "http://"} {
		expect(t, preview(t, alice, bad), http.StatusBadRequest, "M_INVALID_PARAM")
	}
}

func TestPreviewDisabledByDefault(t *testing.T) {
	srv := newServer(t)
	alice := srv.Register(t, "alice")
	expect(t, preview(t, alice, "https://example.org/"), http.StatusNotFound, "M_UNRECOGNIZED")
}

package mediaapi_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/internal/config"
	"parley/internal/testserver"
)

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUploadDownloadRoundTrip(t *testing.T) {
	srv := newServer(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	data := randomBytes(t, 1<<20+123)

	media := upload(t, alice, data, "application/pdf", "report é.pdf")
	if !strings.HasPrefix(media, "hs1.test/") {
		t.Fatalf("media %q is not on hs1.test", media)
	}
	// Any user may download: media is not private to the uploader.
	r := download(t, bob, media)
	expect(t, r, http.StatusOK, "")
	if !bytes.Equal(r.body, data) {
		t.Fatalf("downloaded %d bytes differ from the %d uploaded", len(r.body), len(data))
	}
	h := r.header
	checks := map[string]string{
		"Content-Type":                 "application/pdf",
		"Content-Disposition":          "attachment; filename*=utf-8''report%20%C3%A9.pdf",
		"X-Content-Type-Options":       "nosniff",
		"Cross-Origin-Resource-Policy": "cross-origin",
		"Content-Length":               fmt.Sprint(len(data)),
	}
	for k, v := range checks {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	if csp := h.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "sandbox;") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	// The file name in the path overrides the uploaded one.
	r = download(t, bob, media+"/other.pdf")
	expect(t, r, http.StatusOK, "")
	if d := r.header.Get("Content-Disposition"); d != `attachment; filename=other.pdf` {
		t.Errorf("Content-Disposition with path name = %q", d)
	}
}

func TestContentDisposition(t *testing.T) {
	srv := newServer(t)
	alice := srv.Register(t, "alice")
	cases := []struct{ ctype, want string }{
		{"image/png", "inline; filename=a"},
		{"text/plain; charset=utf-8", "inline; filename=a"},
		{"video/mp4", "inline; filename=a"},
		{"text/html", "attachment; filename=a"},
		{"image/svg+xml", "attachment; filename=a"},
		{"application/javascript", "attachment; filename=a"},
	}
	for _, c := range cases {
		media := upload(t, alice, []byte("<script>alert(1)</script>"+c.ctype), c.ctype, "a")
		r := download(t, alice, media)
		expect(t, r, http.StatusOK, "")
		if got := r.header.Get("Content-Disposition"); got != c.want {
			t.Errorf("%s: Content-Disposition %q, want %q", c.ctype, got, c.want)
		}
		if got := r.header.Get("Content-Type"); got != c.ctype {
			t.Errorf("%s: Content-Type %q", c.ctype, got)
		}
	}
	// No content type given: served as application/octet-stream, no file name.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/_matrix/media/v3/upload", strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		ContentURI string `json:"content_uri"`
	}
	decodeJSON(t, resp, &body)
	r := download(t, alice, strings.TrimPrefix(body.ContentURI, "mxc://"))
	if r.header.Get("Content-Type") != "application/octet-stream" || r.header.Get("Content-Disposition") != "attachment" {
		t.Errorf("no content type: got %q / %q", r.header.Get("Content-Type"), r.header.Get("Content-Disposition"))
	}
}

func TestIdenticalContentStoredOnce(t *testing.T) {
	srv := newServer(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	data := randomBytes(t, 4096)
	a := upload(t, alice, data, "application/octet-stream", "")
	b := upload(t, bob, data, "text/plain", "")
	if a == b {
		t.Fatal("two uploads got the same media ID")
	}
	if n := blobCount(t, srv); n != 1 {
		t.Fatalf("%d blobs stored for identical content, want 1", n)
	}
	ma, err := srv.HS.Store.GetMedia(t.Context(), "hs1.test", strings.TrimPrefix(a, "hs1.test/"))
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := srv.HS.Store.GetMedia(t.Context(), "hs1.test", strings.TrimPrefix(b, "hs1.test/"))
	if ma.SHA256 != mb.SHA256 || len(ma.SHA256) != 64 || ma.Size != 4096 {
		t.Fatalf("hashes %q %q size %d", ma.SHA256, mb.SHA256, ma.Size)
	}
	if r := download(t, bob, a); !bytes.Equal(r.body, data) {
		t.Fatal("shared content differs")
	}
	upload(t, alice, randomBytes(t, 10), "text/plain", "")
	if n := blobCount(t, srv); n != 2 {
		t.Fatalf("%d blobs after different content, want 2", n)
	}
}

func TestMediaConfig(t *testing.T) {
	srv := newServer(t, func(c *config.Config) { c.Media.MaxUploadSize = 12345 })
	alice := srv.Register(t, "alice")
	for _, p := range []string{"/_matrix/client/v1/media/config", "/_matrix/media/v3/config"} {
		r := do(t, alice, http.MethodGet, p, nil)
		expect(t, r, http.StatusOK, "")
		if r.json["m.upload.size"] != float64(12345) {
			t.Fatalf("%s: %s", p, r.body)
		}
	}
}

func TestAuthenticatedMediaNeedsToken(t *testing.T) {
	srv := newServer(t)
	alice := srv.Register(t, "alice")
	media := upload(t, alice, []byte("hello"), "text/plain", "")
	anon := srv.Anon()
	bad := &testserver.Client{S: srv, AccessToken: "not-a-token"}
	paths := []struct{ method, path string }{
		{http.MethodGet, "/_matrix/client/v1/media/download/" + media},
		{http.MethodGet, "/_matrix/client/v1/media/download/" + media + "/f.txt"},
		{http.MethodGet, "/_matrix/client/v1/media/thumbnail/" + media + "?width=32&height=32"},
		{http.MethodGet, "/_matrix/client/v1/media/config"},
		{http.MethodPost, "/_matrix/media/v3/upload"},
		{http.MethodPost, "/_matrix/media/v1/create"},
		{http.MethodPut, "/_matrix/media/v3/upload/" + media},
	}
	for _, p := range paths {
		expect(t, do(t, anon, p.method, p.path, strings.NewReader("x")), http.StatusUnauthorized, "M_MISSING_TOKEN")
		expect(t, do(t, bad, p.method, p.path, strings.NewReader("x")), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	}
	// The token may also be given as access_token in the query.
	r := do(t, anon, http.MethodGet, "/_matrix/client/v1/media/download/"+media+"?access_token="+alice.AccessToken, nil)
	expect(t, r, http.StatusOK, "")
}

func TestUploadTooLarge(t *testing.T) {
	srv := newServer(t, func(c *config.Config) { c.Media.MaxUploadSize = 1000 })
	alice := srv.Register(t, "alice")
	// Declared too large: refused before reading.
	r := do(t, alice, http.MethodPost, "/_matrix/media/v3/upload", bytes.NewReader(make([]byte, 1001)), "Content-Type", "text/plain")
	expect(t, r, http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
	// Chunked (no Content-Length): refused once the limit is passed.
	r = do(t, alice, http.MethodPost, "/_matrix/media/v3/upload", io.MultiReader(strings.NewReader(strings.Repeat("a", 600)), strings.NewReader(strings.Repeat("b", 600))))
	expect(t, r, http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
	// Exactly the limit is accepted.
	upload(t, alice, make([]byte, 1000), "text/plain", "")
	// Asynchronous uploads have the same limit.
	c := do(t, alice, http.MethodPost, "/_matrix/media/v1/create", nil)
	expect(t, c, http.StatusOK, "")
	media := strings.TrimPrefix(c.json["content_uri"].(string), "mxc://")
	r = do(t, alice, http.MethodPut, "/_matrix/media/v3/upload/"+media, io.MultiReader(strings.NewReader(strings.Repeat("a", 1001))))
	expect(t, r, http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
	if n := tmpCount(t, srv); n != 0 {
		t.Fatalf("%d partial uploads left behind", n)
	}
	if n := blobCount(t, srv); n != 1 {
		t.Fatalf("%d blobs, want only the accepted upload", n)
	}
}

func TestRangeRequests(t *testing.T) {
	srv := newServer(t)
	alice := srv.Register(t, "alice")
	data := randomBytes(t, 10000)
	media := upload(t, alice, data, "video/mp4", "clip.mp4")

	r := download(t, alice, media, "Range", "bytes=100-199")
	expect(t, r, http.StatusPartialContent, "")
	if !bytes.Equal(r.body, data[100:200]) || r.header.Get("Content-Range") != "bytes 100-199/10000" {
		t.Fatalf("range 100-199: %d bytes, Content-Range %q", len(r.body), r.header.Get("Content-Range"))
	}
	r = download(t, alice, media, "Range", "bytes=-10")
	expect(t, r, http.StatusPartialContent, "")
	if !bytes.Equal(r.body, data[9990:]) {
		t.Fatal("suffix range differs")
	}
	r = download(t, alice, media, "Range", "bytes=9000-")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, data[9000:]) {
		t.Fatalf("open range: %d, %d bytes", r.status, len(r.body))
	}
	r = download(t, alice, media, "Range", "bytes=20000-20010")
	if r.status != http.StatusRequestedRangeNotSatisfiable || r.header.Get("Content-Range") != "bytes */10000" {
		t.Fatalf("unsatisfiable range: %d %q", r.status, r.header.Get("Content-Range"))
	}
	if r := download(t, alice, media); r.header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("Accept-Ranges %q", r.header.Get("Accept-Ranges"))
	}
	// Conditional request with the ETag: 304, no body.
	etag := download(t, alice, media).header.Get("ETag")
	if r := download(t, alice, media, "If-None-Match", etag); r.status != http.StatusNotModified || len(r.body) != 0 {
		t.Fatalf("If-None-Match: %d with %d bytes", r.status, len(r.body))
	}
}

func TestAsyncUpload(t *testing.T) {
	srv := newServer(t, func(c *config.Config) { c.Media.MaxPendingUploads = 3 })
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")

	c := do(t, alice, http.MethodPost, "/_matrix/media/v1/create", nil)
	expect(t, c, http.StatusOK, "")
	exp, _ := c.json["unused_expires_at"].(float64)
	if d := time.UnixMilli(int64(exp)).Sub(time.Now()); d < 23*time.Hour || d > 25*time.Hour {
		t.Fatalf("unused_expires_at is %v away, want about 24h", d)
	}
	media := strings.TrimPrefix(c.json["content_uri"].(string), "mxc://")

	// Not uploaded yet: 504 M_NOT_YET_UPLOADED after timeout_ms.
	start := time.Now()
	expect(t, download(t, alice, media+"?timeout_ms=200"), http.StatusGatewayTimeout, "M_NOT_YET_UPLOADED")
	if d := time.Since(start); d < 200*time.Millisecond || d > 3*time.Second {
		t.Fatalf("waited %v for timeout_ms=200", d)
	}
	// A download waiting for the upload gets it once it arrives.
	var wg sync.WaitGroup
	var waited *response
	wg.Add(1)
	go func() {
		defer wg.Done()
		waited = download(t, bob, media+"?timeout_ms=10000")
	}()
	time.Sleep(100 * time.Millisecond)

	// Only the creator may upload.
	expect(t, do(t, bob, http.MethodPut, "/_matrix/media/v3/upload/"+media, strings.NewReader("x")), http.StatusForbidden, "M_FORBIDDEN")
	r := do(t, alice, http.MethodPut, "/_matrix/media/v3/upload/"+media+"?filename=late.txt", strings.NewReader("late content"), "Content-Type", "text/plain")
	expect(t, r, http.StatusOK, "")
	if string(r.body) != "{}" {
		t.Fatalf("PUT upload answered %s, want {}", r.body)
	}
	wg.Wait()
	if waited.status != http.StatusOK || string(waited.body) != "late content" || waited.header.Get("Content-Disposition") != "inline; filename=late.txt" {
		t.Fatalf("waiting download got %d %q %q", waited.status, waited.body, waited.header.Get("Content-Disposition"))
	}
	expect(t, do(t, alice, http.MethodPut, "/_matrix/media/v3/upload/"+media, strings.NewReader("again")), http.StatusConflict, "M_CANNOT_OVERWRITE_MEDIA")
	expect(t, do(t, alice, http.MethodPut, "/_matrix/media/v3/upload/hs1.test/unknownID", strings.NewReader("x")), http.StatusNotFound, "M_NOT_FOUND")
	expect(t, do(t, alice, http.MethodPut, "/_matrix/media/v3/upload/other.test/abc", strings.NewReader("x")), http.StatusNotFound, "M_NOT_FOUND")

	// At most max_pending_uploads unused media IDs per user.
	for i := 0; i < 3; i++ {
		expect(t, do(t, alice, http.MethodPost, "/_matrix/media/v1/create", nil), http.StatusOK, "")
	}
	r = do(t, alice, http.MethodPost, "/_matrix/media/v1/create", nil)
	expect(t, r, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
	if _, ok := r.json["retry_after_ms"]; !ok {
		t.Fatalf("429 without retry_after_ms: %s", r.body)
	}
	expect(t, do(t, bob, http.MethodPost, "/_matrix/media/v1/create", nil), http.StatusOK, "")
}

func TestDownloadNotFound(t *testing.T) {
	srv := newServer(t)
	alice := srv.Register(t, "alice")
	for _, m := range []string{"hs1.test/doesNotExist", "hs1.test/bad%24id", "remote.test/abcdef", "bad_server!/abc"} {
		expect(t, download(t, alice, m), http.StatusNotFound, "M_NOT_FOUND")
	}
	// Remote media without federation media support yet: 404 on the thumbnail too.
	expect(t, do(t, alice, http.MethodGet, "/_matrix/client/v1/media/thumbnail/remote.test/abcdef?width=32&height=32", nil), http.StatusNotFound, "M_NOT_FOUND")
}

func TestLegacyEndpoints(t *testing.T) {
	future := time.Now().Add(time.Hour)
	t.Run("media before the cut-off", func(t *testing.T) {
		srv := newServer(t, func(c *config.Config) { c.Media.LegacyCutoff = future })
		alice := srv.Register(t, "alice")
		media := upload(t, alice, testPNG(), "image/png", "p.png")
		for _, v := range []string{"v3", "r0"} {
			r := do(t, srv.Anon(), http.MethodGet, "/_matrix/media/"+v+"/download/"+media, nil)
			expect(t, r, http.StatusOK, "")
			if !bytes.Equal(r.body, testPNG()) || !strings.HasPrefix(r.header.Get("Cache-Control"), "public") {
				t.Fatalf("legacy %s download differs or is not cacheable: %q", v, r.header.Get("Cache-Control"))
			}
		}
		r := do(t, srv.Anon(), http.MethodGet, "/_matrix/media/v3/thumbnail/"+media+"?width=32&height=32&method=crop", nil)
		expect(t, r, http.StatusOK, "")
	})
	t.Run("media after the cut-off", func(t *testing.T) {
		srv := newServer(t) // default cut-off: 2024-09-01
		alice := srv.Register(t, "alice")
		media := upload(t, alice, testPNG(), "image/png", "p.png")
		expect(t, do(t, srv.Anon(), http.MethodGet, "/_matrix/media/v3/download/"+media, nil), http.StatusNotFound, "M_NOT_FOUND")
		expect(t, do(t, alice, http.MethodGet, "/_matrix/media/v3/thumbnail/"+media+"?width=32&height=32", nil), http.StatusNotFound, "M_NOT_FOUND")
		expect(t, download(t, alice, media), http.StatusOK, "")
	})
	t.Run("disabled", func(t *testing.T) {
		srv := newServer(t, func(c *config.Config) { c.Media.LegacyUnauthenticated = false; c.Media.LegacyCutoff = future })
		alice := srv.Register(t, "alice")
		media := upload(t, alice, []byte("x"), "text/plain", "")
		expect(t, do(t, srv.Anon(), http.MethodGet, "/_matrix/media/v3/download/"+media, nil), http.StatusNotFound, "M_UNRECOGNIZED")
	})
}

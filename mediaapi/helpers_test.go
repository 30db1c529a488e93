package mediaapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/clientapi"
	"parley/internal/config"
	"parley/internal/testserver"
	"parley/mediaapi/internal/testimg"
)

const sharedSecret = "media-test-secret"

// newServer starts a homeserver with the shared secret set (for admins) and opts applied.
func newServer(t *testing.T, opts ...testserver.Option) *testserver.Server {
	t.Helper()
	all := append([]testserver.Option{func(c *config.Config) { c.Registration.SharedSecret = sharedSecret }}, opts...)
	return testserver.New(t, all...)
}

type response struct {
	status  int
	body    []byte
	header  http.Header
	json    map[string]any
	errcode string
}

// do sends a request with a raw body and header pairs; c's token is used if set.
func do(t testing.TB, c *testserver.Client, method, path string, body io.Reader, hdr ...string) *response {
	t.Helper()
	req, err := http.NewRequest(method, c.S.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.AccessToken)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := &response{status: resp.StatusCode, body: b, header: resp.Header}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &r.json); err != nil {
			t.Fatalf("%s %s: bad JSON %s", method, path, b)
		}
		r.errcode, _ = r.json["errcode"].(string)
	}
	return r
}

func expect(t testing.TB, r *response, status int, errcode string) {
	t.Helper()
	if r.status != status || r.errcode != errcode {
		t.Fatalf("got %d %q, want %d %q; body %.300s", r.status, r.errcode, status, errcode, r.body)
	}
}

// upload uploads data and returns the media path part "server/mediaId".
func upload(t testing.TB, c *testserver.Client, data []byte, ctype, name string) string {
	t.Helper()
	path := "/_matrix/media/v3/upload"
	if name != "" {
		path += "?filename=" + url.QueryEscape(name)
	}
	r := do(t, c, http.MethodPost, path, bytes.NewReader(data), "Content-Type", ctype)
	expect(t, r, http.StatusOK, "")
	uri, _ := r.json["content_uri"].(string)
	rest, ok := strings.CutPrefix(uri, "mxc://")
	if !ok {
		t.Fatalf("content_uri %q", uri)
	}
	return rest
}

// download fetches media over the authenticated endpoint.
func download(t testing.TB, c *testserver.Client, media string, hdr ...string) *response {
	t.Helper()
	return do(t, c, http.MethodGet, "/_matrix/client/v1/media/download/"+media, nil, hdr...)
}

// makeAdmin registers an admin account through shared-secret registration.
func makeAdmin(t testing.TB, srv *testserver.Server, localpart string) *testserver.Client {
	t.Helper()
	c := srv.Anon()
	nonce := c.MustDo(t, http.MethodGet, "/_synapse/admin/v1/register", nil).JSON["nonce"].(string)
	mac := clientapi.SharedSecretMAC(sharedSecret, nonce, localpart, "password", true, "")
	res := c.MustDo(t, http.MethodPost, "/_synapse/admin/v1/register", map[string]any{
		"nonce": nonce, "username": localpart, "password": "password", "admin": true, "mac": mac,
	})
	c.AccessToken = res.JSON["access_token"].(string)
	c.UserID = id.UserID(res.JSON["user_id"].(string))
	return c
}

// blobCount counts stored blobs (files outside tmp/) under the media directory.
func blobCount(t testing.TB, srv *testserver.Server) int {
	t.Helper()
	n := 0
	root := srv.Cfg.Media.Path
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() && p == filepath.Join(root, "tmp") {
			return filepath.SkipDir
		}
		if !info.IsDir() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// tmpCount counts files left in the upload staging directory.
func tmpCount(t testing.TB, srv *testserver.Server) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(srv.Cfg.Media.Path, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// eventually retries f until it returns true or a second passes.
func eventually(t testing.TB, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if f() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func decodeJSON(t testing.TB, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

var testPNGData = testimg.PNG(400, 300)

// testPNG is a 400×300 PNG.
func testPNG() []byte { return testPNGData }

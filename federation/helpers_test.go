package federation_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"

	pfed "parley/federation"
	"parley/internal/testserver"
)

// rawFed sends a federation request to srv over TLS, with auth as the
// Authorization header (none when empty).
func rawFed(t *testing.T, srv *testserver.Server, method, uri, auth string, body []byte) (int, map[string]any) {
	t.Helper()
	tlsCfg, err := srv.Cfg.Federation.ClientTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg = tlsCfg.Clone()
	tlsCfg.ServerName = srv.Cfg.ServerName
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	var rdr io.Reader
	if body != nil {
		rdr = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "https://"+srv.FedAddr+uri, rdr)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, uri, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// xMatrix signs a request as origin with key, for destination.
func xMatrix(t *testing.T, key *federation.SigningKey, method, uri, origin, destination string, body []byte) string {
	t.Helper()
	obj := map[string]any{"method": method, "uri": uri, "origin": origin, "destination": destination}
	if body != nil {
		obj["content"] = json.RawMessage(body)
	}
	sig, err := key.SignJSON(obj)
	if err != nil {
		t.Fatal(err)
	}
	return federation.XMatrixAuth{Origin: origin, Destination: destination, KeyID: key.ID, Signature: sig}.String()
}

// fedClient is a signed federation client acting as srv.
func fedClient(t *testing.T, srv *testserver.Server) *federation.Client {
	t.Helper()
	c, err := pfed.NewClient(&srv.Cfg, srv.HS.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pair starts hs1.test and hs2.test federating over TLS.
func pair(t *testing.T) (*testserver.Server, *testserver.Server) {
	t.Helper()
	s := testserver.NewFederation(t, []string{"hs1.test", "hs2.test"})
	return s[0], s[1]
}

// isErr reports whether err is a Matrix error response with status and errcode.
func isErr(err error, status int, code string) bool {
	var herr mautrix.HTTPError
	if !errors.As(err, &herr) || herr.Response == nil || herr.Response.StatusCode != status {
		return false
	}
	return herr.RespError != nil && herr.RespError.ErrCode == code
}

// fedClientTB is fedClient for benchmarks: a client acting as hs2.
func fedClientTB(tb testing.TB, f *roomFixture) *federation.Client {
	tb.Helper()
	c, err := pfed.NewClient(&f.hs2.Cfg, f.hs2.HS.SigningKey)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func newFetcher(t *testing.T, srv *testserver.Server) *pfed.MediaFetcher {
	t.Helper()
	return pfed.NewMediaFetcher(fedClient(t, srv))
}

// mfedPath is a /_matrix/federation/... path for Client.MakeRequest.
func mfedPath(parts ...string) federation.URLPath {
	out := make(federation.URLPath, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out
}

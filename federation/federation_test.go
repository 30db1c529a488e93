package federation_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"maunium.net/go/mautrix/federation"

	"parley/internal/testserver"
)

func TestServerKeyIsSelfSigned(t *testing.T) {
	srv := testserver.New(t)
	res := srv.Anon().MustDo(t, http.MethodGet, "/_matrix/key/v2/server", nil)
	var skr federation.ServerKeyResponse
	if err := json.Unmarshal(res.Body, &skr); err != nil {
		t.Fatalf("decode: %v: %s", err, res.Body)
	}
	if skr.ServerName != "hs1.test" {
		t.Fatalf("server_name = %q", skr.ServerName)
	}
	if !skr.HasKey(srv.HS.SigningKey.ID) {
		t.Fatalf("key %s missing: %s", srv.HS.SigningKey.ID, res.Body)
	}
	if err := skr.VerifySelfSignature(); err != nil {
		t.Fatalf("self-signature: %v", err)
	}
	res = srv.Anon().MustDo(t, http.MethodGet, "/_matrix/federation/v1/version", nil)
	if srv, _ := res.JSON["server"].(map[string]any); srv["name"] != "Parley" {
		t.Fatalf("version: %s", res.Body)
	}
}

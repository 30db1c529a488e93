package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"parley/clientapi"
	"parley/internal/testserver"
)

// TestOpenIDToken: a user's OpenID token is exchanged through the federation
// API for their user ID, and is good for nothing else.
func TestOpenIDToken(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	res := alice.MustDo(t, http.MethodPost, testserver.Sprintf("user/%s/openid/request_token", alice.UserID), map[string]any{})
	tok, _ := res.JSON["access_token"].(string)
	if tok == "" || res.JSON["token_type"] != "Bearer" || res.JSON["matrix_server_name"] != srv.Cfg.ServerName || res.JSON["expires_in"] != 3600.0 {
		t.Fatalf("request_token: %s", res.Body)
	}
	userinfo := func(q string) *testserver.Response {
		return srv.Anon().Do(t, http.MethodGet, "/_matrix/federation/v1/openid/userinfo"+q, nil)
	}
	if r := userinfo("?access_token=" + url.QueryEscape(tok)); r.Status != 200 || r.JSON["sub"] != string(alice.UserID) {
		t.Fatalf("userinfo: %d %s", r.Status, r.Body)
	}
	for q, code := range map[string]string{"?access_token=nope": "M_UNKNOWN_TOKEN", "": "M_MISSING_TOKEN"} {
		if r := userinfo(q); r.Status != 401 || r.JSON["errcode"] != code {
			t.Fatalf("userinfo%s: %d %s", q, r.Status, r.Body)
		}
	}
	// Not an access token for the client API.
	impostor := *alice
	impostor.AccessToken = tok
	if r := impostor.Do(t, http.MethodGet, "account/whoami", nil); r.Status != 401 {
		t.Fatalf("OpenID token used as access token: %d %s", r.Status, r.Body)
	}
	// Only for oneself, and the body must be a JSON object.
	if r := bob.Do(t, http.MethodPost, testserver.Sprintf("user/%s/openid/request_token", alice.UserID), map[string]any{}); r.Status != 403 || r.JSON["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("token for another user: %d %s", r.Status, r.Body)
	}
	if r := alice.Do(t, http.MethodPost, testserver.Sprintf("user/%s/openid/request_token", alice.UserID), "[]"); r.Status != 400 {
		t.Fatalf("non-object body: %d %s", r.Status, r.Body)
	}
	// An expired token is refused.
	now := time.Now()
	if err := srv.HS.Store.CreateOpenIDToken(context.Background(), clientapi.HashToken("old"), alice.UserID, now.UnixMilli(), now.Add(-time.Second).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if r := userinfo("?access_token=old"); r.Status != 401 || r.JSON["errcode"] != "M_UNKNOWN_TOKEN" {
		t.Fatalf("expired token: %d %s", r.Status, r.Body)
	}
}

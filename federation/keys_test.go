package federation_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/signutil"

	"parley/internal/config"
	"parley/internal/signing"
	"parley/internal/testserver"
)

func TestOldVerifyKeysPublished(t *testing.T) {
	old := signing.Generate()
	srv := testserver.New(t, func(c *config.Config) {
		c.Federation.OldVerifyKeys = []config.OldVerifyKey{{KeyID: string(old.ID), PublicKey: string(old.Pub), ExpiredTS: 1700000000000}}
	})
	res := srv.Anon().MustDo(t, http.MethodGet, "/_matrix/key/v2/server", nil)
	var skr federation.ServerKeyResponse
	if err := json.Unmarshal(res.Body, &skr); err != nil {
		t.Fatal(err)
	}
	if err := skr.VerifySelfSignature(); err != nil {
		t.Fatalf("self-signature: %v", err)
	}
	ok := skr.OldVerifyKeys[old.ID]
	if ok.Key != old.Pub || ok.ExpiredTS.UnixMilli() != 1700000000000 {
		t.Fatalf("old_verify_keys: %s", res.Body)
	}
	// Without old keys, old_verify_keys is still there, empty.
	res = testserver.New(t).Anon().MustDo(t, http.MethodGet, "/_matrix/key/v2/server", nil)
	var body map[string]json.RawMessage
	if err := json.Unmarshal(res.Body, &body); err != nil || string(body["old_verify_keys"]) != "{}" {
		t.Fatalf("no old keys: %s", res.Body)
	}
	var fresh federation.ServerKeyResponse
	if err := json.Unmarshal(res.Body, &fresh); err != nil || fresh.VerifySelfSignature() != nil {
		t.Fatalf("self-signature without old keys: %s", res.Body)
	}
}

func TestNotaryQueryFetchesAndCachesRemoteKeys(t *testing.T) {
	hs1, hs2 := pair(t)
	check := func(raw json.RawMessage) {
		t.Helper()
		var skr federation.ServerKeyResponse
		if err := json.Unmarshal(raw, &skr); err != nil {
			t.Fatal(err)
		}
		if skr.ServerName != "hs2.test" || !skr.HasKey(hs2.HS.SigningKey.ID) {
			t.Fatalf("unexpected keys: %s", raw)
		}
		if err := skr.VerifySelfSignature(); err != nil {
			t.Fatalf("origin signature: %v", err)
		}
		if err := signutil.VerifyJSON("hs1.test", hs1.HS.SigningKey.ID, hs1.HS.SigningKey.Pub, raw); err != nil {
			t.Fatalf("notary signature: %v: %s", err, raw)
		}
	}
	res := hs1.Anon().MustDo(t, http.MethodGet, "/_matrix/key/v2/query/hs2.test", nil)
	var get struct {
		ServerKeys []json.RawMessage `json:"server_keys"`
	}
	if err := json.Unmarshal(res.Body, &get); err != nil || len(get.ServerKeys) != 1 {
		t.Fatalf("GET query: %s", res.Body)
	}
	check(get.ServerKeys[0])
	// The deprecated form naming a key ID.
	res = hs1.Anon().MustDo(t, http.MethodGet, "/_matrix/key/v2/query/hs2.test/"+string(hs2.HS.SigningKey.ID), nil)
	if err := json.Unmarshal(res.Body, &get); err != nil || len(get.ServerKeys) != 1 {
		t.Fatalf("GET query with key ID: %s", res.Body)
	}
	check(get.ServerKeys[0])

	keys, err := hs1.HS.Store.ServerKeys(context.Background(), "hs2.test")
	if err != nil || len(keys) != 1 || keys[0].PublicKey != string(hs2.HS.SigningKey.Pub) || keys[0].ValidUntilTS <= time.Now().UnixMilli() {
		t.Fatalf("cached keys: %+v %v", keys, err)
	}

	// The cached copy answers even when hs2 is gone.
	hs2.Close()
	body := map[string]any{"server_keys": map[string]any{"hs2.test": map[string]any{}, "127.0.0.9:1": map[string]any{}}}
	res = hs1.Anon().MustDo(t, http.MethodPost, "/_matrix/key/v2/query", body)
	var post struct {
		ServerKeys []json.RawMessage `json:"server_keys"`
	}
	if err := json.Unmarshal(res.Body, &post); err != nil || len(post.ServerKeys) != 1 {
		t.Fatalf("POST query: %s", res.Body)
	}
	check(post.ServerKeys[0])

	if r := hs1.Anon().Do(t, http.MethodPost, "/_matrix/key/v2/query", map[string]any{}); r.Status != 400 || r.ErrCode != "M_MISSING_PARAM" {
		t.Fatalf("missing server_keys: %d %s", r.Status, r.Body)
	}
}

func TestRequestAuthentication(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	alice.MustDo(t, http.MethodPut, "profile/"+string(alice.UserID)+"/displayname", map[string]any{"displayname": "Alice"})

	// A correctly signed request from hs2 (keys fetched over TLS) succeeds.
	prof, err := fedClient(t, hs2).QueryProfile(context.Background(), "hs1.test", alice.UserID)
	if err != nil || prof.DisplayName != "Alice" {
		t.Fatalf("signed profile query: %+v %v", prof, err)
	}

	uri := "/_matrix/federation/v1/query/profile?user_id=" + string(alice.UserID)
	forged := signing.Generate()
	forged.ID = hs2.HS.SigningKey.ID
	cases := []struct {
		name string
		auth string
	}{
		{"unsigned", ""},
		{"not X-Matrix", "Bearer abc"},
		{"wrong key", xMatrix(t, forged, "GET", uri, "hs2.test", "hs1.test", nil)},
		{"wrong destination", xMatrix(t, hs2.HS.SigningKey, "GET", uri, "hs2.test", "hs3.test", nil)},
		{"signed for another uri", xMatrix(t, hs2.HS.SigningKey, "GET", uri+"x", "hs2.test", "hs1.test", nil)},
		{"unknown key id", xMatrix(t, signing.Generate(), "GET", uri, "hs2.test", "hs1.test", nil)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := rawFed(t, hs1, "GET", uri, tc.auth, nil)
			if status != 401 || body["errcode"] != "M_UNAUTHORIZED" {
				t.Fatalf("got %d %v", status, body)
			}
		})
	}
	// A request whose body is {} is signed with "content": {} (mautrix alone
	// would drop it); get_missing_events without lists walks from nothing.
	room := createRoom(t, alice, map[string]any{"preset": "public_chat", "room_version": "10"})
	hs2.Register(t, "bob").MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(room))+"?server_name=hs1.test", map[string]any{})
	gme := "/_matrix/federation/v1/get_missing_events/" + url.PathEscape(string(room))
	if status, body := rawFed(t, hs1, "POST", gme, xMatrix(t, hs2.HS.SigningKey, "POST", gme, "hs2.test", "hs1.test", []byte(`{}`)), []byte(`{}`)); status != 200 || len(body["events"].([]any)) != 0 {
		t.Fatalf("empty-object body: %d %v", status, body)
	}
	// An origin that is not a server name (non-numeric port) is a bad request.
	if status, body := rawFed(t, hs1, "GET", uri, xMatrix(t, hs2.HS.SigningKey, "GET", uri, "hs2.test:http", "hs1.test", nil), nil); status != 400 {
		t.Fatalf("non-numeric port in origin: %d %v", status, body)
	}
	// A body with a float is not canonical JSON, so no signature can cover it: 400 M_BAD_JSON.
	sendURI := "/_matrix/federation/v1/send/float"
	floatBody := []byte(`{"origin":"hs2.test","origin_server_ts":1,"pdus":[],"x":1.5}`)
	if status, body := rawFed(t, hs1, "PUT", sendURI, xMatrix(t, hs2.HS.SigningKey, "PUT", sendURI, "hs2.test", "hs1.test", []byte(`{}`)), floatBody); status != 400 || body["errcode"] != "M_BAD_JSON" {
		t.Fatalf("float body: %d %v", status, body)
	}
	status, body := rawFed(t, hs1, "GET", uri, xMatrix(t, hs2.HS.SigningKey, "GET", uri, "hs2.test", "hs1.test", nil), nil)
	if status != 200 || body["displayname"] != "Alice" {
		t.Fatalf("hand-signed request: %d %v", status, body)
	}
}

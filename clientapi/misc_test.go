package clientapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"parley/clientapi"
	"parley/internal/config"
	"parley/internal/testserver"
)

func TestSharedSecretRegistration(t *testing.T) {
	off := testserver.New(t)
	if res := off.Anon().Do(t, http.MethodGet, "/_synapse/admin/v1/register", nil); res.Status != 400 {
		t.Fatalf("disabled: %d %s", res.Status, res.Body)
	}
	srv := testserver.New(t, func(c *config.Config) { c.Registration.SharedSecret = "s3cret"; c.Registration.Enabled = false })
	anon := srv.Anon()
	nonce := func() string {
		return anon.MustDo(t, http.MethodGet, "/_synapse/admin/v1/register", nil).JSON["nonce"].(string)
	}
	n := nonce()
	body := map[string]any{"nonce": n, "username": "root", "password": "rootpass", "admin": true,
		"mac": clientapi.SharedSecretMAC("wrong", n, "root", "rootpass", true, "")}
	if res := anon.Do(t, http.MethodPost, "/_synapse/admin/v1/register", body); res.Status != 403 || res.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("bad mac: %d %s", res.Status, res.Body)
	}
	// The nonce was spent by the failed attempt.
	body["mac"] = clientapi.SharedSecretMAC("s3cret", n, "root", "rootpass", true, "")
	if res := anon.Do(t, http.MethodPost, "/_synapse/admin/v1/register", body); res.Status != 400 {
		t.Fatalf("reused nonce: %d %s", res.Status, res.Body)
	}
	// The MAC covers the admin flag.
	n = nonce()
	body["nonce"], body["mac"] = n, clientapi.SharedSecretMAC("s3cret", n, "root", "rootpass", false, "")
	if res := anon.Do(t, http.MethodPost, "/_synapse/admin/v1/register", body); res.Status != 403 {
		t.Fatalf("admin flag not covered: %d %s", res.Status, res.Body)
	}
	n = nonce()
	body["nonce"], body["mac"] = n, clientapi.SharedSecretMAC("s3cret", n, "root", "rootpass", true, "")
	res := anon.MustDo(t, http.MethodPost, "/_synapse/admin/v1/register", body)
	if res.JSON["user_id"] != "@root:hs1.test" || res.JSON["access_token"] == nil || res.JSON["home_server"] != "hs1.test" {
		t.Fatalf("register: %s", res.Body)
	}
	acc, err := srv.HS.Store.GetAccount(context.Background(), "@root:hs1.test")
	if err != nil || !acc.IsAdmin {
		t.Fatalf("admin flag not stored: %+v %v", acc, err)
	}
	root := &testserver.Client{S: srv, AccessToken: res.JSON["access_token"].(string)}
	root.MustDo(t, http.MethodGet, "account/whoami", nil)
	// Capitals are folded, the MAC being over the name as sent.
	n = nonce()
	res = anon.MustDo(t, http.MethodPost, "/_synapse/admin/v1/register", map[string]any{"nonce": n, "username": "MixedCase", "password": "pw12345",
		"mac": clientapi.SharedSecretMAC("s3cret", n, "MixedCase", "pw12345", false, "")})
	if res.JSON["user_id"] != "@mixedcase:hs1.test" {
		t.Fatalf("mixed case: %s", res.Body)
	}
	// Taken name.
	n = nonce()
	body["nonce"], body["mac"] = n, clientapi.SharedSecretMAC("s3cret", n, "root", "rootpass", true, "")
	if res := anon.Do(t, http.MethodPost, "/_synapse/admin/v1/register", body); res.ErrCode != "M_USER_IN_USE" {
		t.Fatalf("taken: %d %s", res.Status, res.Body)
	}
}

func TestRateLimit(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) {
		c.RateLimits.Enabled = true
		c.RateLimits.Login = config.Bucket{PerSecond: 0.001, Burst: 2}
	})
	srv.Register(t, "alice")
	anon := srv.Anon()
	login := map[string]any{"type": "m.login.password", "user": "alice", "password": "password"}
	anon.MustDo(t, http.MethodPost, "login", login)
	anon.MustDo(t, http.MethodPost, "login", login)
	res := anon.Do(t, http.MethodPost, "login", login)
	if res.Status != 429 || res.ErrCode != "M_LIMIT_EXCEEDED" {
		t.Fatalf("third login: %d %s", res.Status, res.Body)
	}
	ms, _ := res.JSON["retry_after_ms"].(float64)
	secs, err := strconv.Atoi(res.Header.Get("Retry-After"))
	if ms < 1000 || err != nil || secs < 1 || float64(secs)*1000 < ms {
		t.Fatalf("retry_after_ms %v, Retry-After %q", ms, res.Header.Get("Retry-After"))
	}
	// Off by default.
	free := testserver.New(t)
	free.Register(t, "alice")
	for i := 0; i < 10; i++ {
		free.Anon().MustDo(t, http.MethodPost, "login", login)
	}
}

func TestRequestTooLarge(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.Listen.MaxRequestBytes = 4096 })
	alice := srv.Register(t, "alice")
	big := `{"displayname":"` + strings.Repeat("x", 5000) + `"}`
	res := alice.Do(t, http.MethodPut, "profile/@alice:hs1.test/displayname", big)
	if res.Status != 413 || res.ErrCode != "M_TOO_LARGE" {
		t.Fatalf("large body: %d %s", res.Status, res.Body)
	}
	// Chunked (no Content-Length): caught while reading.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/_matrix/client/v3/login", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("chunked large body: %d", resp.StatusCode)
	}
}

func TestWellKnown(t *testing.T) {
	srv := testserver.New(t)
	for _, p := range []string{"/.well-known/matrix/server", "/.well-known/matrix/client"} {
		if res := srv.Anon().Do(t, http.MethodGet, p, nil); res.Status != 404 || res.ErrCode != "M_NOT_FOUND" {
			t.Fatalf("%s unset: %d %s", p, res.Status, res.Body)
		}
	}
	set := testserver.New(t, func(c *config.Config) {
		c.WellKnown.ServerName = "matrix.hs1.test:443"
		c.WellKnown.ClientBaseURL = "https://matrix.hs1.test"
	})
	if res := set.Anon().MustDo(t, http.MethodGet, "/.well-known/matrix/server", nil); string(res.Body) != `{"m.server":"matrix.hs1.test:443"}` {
		t.Fatalf("server: %s", res.Body)
	}
}

// TestMautrixClient drives the server with a real third-party client library.
func TestMautrixClient(t *testing.T) {
	srv := testserver.New(t)
	ctx := context.Background()
	cli, err := mautrix.NewClient(srv.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "mau", Password: "secret12", InitialDeviceDisplayName: "mautrix"})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if reg.UserID != "@mau:hs1.test" {
		t.Fatalf("user id %s", reg.UserID)
	}
	flows, err := cli.GetLoginFlows(ctx)
	if err != nil || !flows.HasFlow(mautrix.AuthTypePassword) {
		t.Fatalf("flows: %+v %v", flows, err)
	}
	login, err := cli.Login(ctx, &mautrix.ReqLogin{
		Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "mau"},
		Password: "secret12", StoreCredentials: true,
	})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	who, err := cli.Whoami(ctx)
	if err != nil || who.UserID != reg.UserID || who.DeviceID != login.DeviceID {
		t.Fatalf("whoami: %+v %v", who, err)
	}
	if err := cli.SetDisplayName(ctx, "Mau Trix"); err != nil {
		t.Fatalf("set displayname: %v", err)
	}
	prof, err := cli.GetProfile(ctx, reg.UserID)
	if err != nil || prof.DisplayName != "Mau Trix" {
		t.Fatalf("profile: %+v %v", prof, err)
	}
	if _, err := cli.GetProfile(ctx, id.UserID("@ghost:hs1.test")); !isErrCode(err, "M_NOT_FOUND") {
		t.Fatalf("unknown profile: %v", err)
	}
	if _, err := cli.Logout(ctx); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if _, err := cli.Whoami(ctx); !isErrCode(err, "M_UNKNOWN_TOKEN") {
		t.Fatalf("whoami after logout: %v", err)
	}
}

func isErrCode(err error, code string) bool {
	var he mautrix.HTTPError
	if e, ok := err.(mautrix.HTTPError); ok {
		he = e
	} else if pe, ok := err.(*mautrix.HTTPError); ok {
		he = *pe
	} else {
		return err != nil && strings.Contains(err.Error(), code)
	}
	return he.RespError != nil && he.RespError.ErrCode == code
}

func TestAdminRegistrationTokens(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.Registration.RequireToken = true; c.Registration.SharedSecret = "s" })
	anon := srv.Anon()
	n := anon.MustDo(t, http.MethodGet, "/_synapse/admin/v1/register", nil).JSON["nonce"].(string)
	res := anon.MustDo(t, http.MethodPost, "/_synapse/admin/v1/register", map[string]any{"nonce": n, "username": "root", "password": "rootpass",
		"admin": true, "mac": clientapi.SharedSecretMAC("s", n, "root", "rootpass", true, "")})
	root := &testserver.Client{S: srv, AccessToken: res.JSON["access_token"].(string)}
	n = anon.MustDo(t, http.MethodGet, "/_synapse/admin/v1/register", nil).JSON["nonce"].(string)
	res = anon.MustDo(t, http.MethodPost, "/_synapse/admin/v1/register", map[string]any{"nonce": n, "username": "plain", "password": "plainpass",
		"mac": clientapi.SharedSecretMAC("s", n, "plain", "plainpass", false, "")})
	plain := &testserver.Client{S: srv, AccessToken: res.JSON["access_token"].(string)}

	if res := plain.Do(t, http.MethodPost, "/_synapse/admin/v1/registration_tokens/new", map[string]any{}); res.Status != 403 || res.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("non-admin: %d %s", res.Status, res.Body)
	}
	gen := root.MustDo(t, http.MethodPost, "/_synapse/admin/v1/registration_tokens/new", map[string]any{"length": 20})
	if tok, _ := gen.JSON["token"].(string); len(tok) != 20 || gen.JSON["uses_allowed"] != nil || gen.JSON["pending"] != float64(0) {
		t.Fatalf("generated: %s", gen.Body)
	}
	root.MustDo(t, http.MethodPost, "/_synapse/admin/v1/registration_tokens/new", map[string]any{"token": "invite-1", "uses_allowed": 1})
	for _, bad := range []map[string]any{{"token": "invite-1"}, {"token": "bad token"}, {"uses_allowed": -1}, {"expiry_time": 5}, {"length": 0}} {
		if res := root.Do(t, http.MethodPost, "/_synapse/admin/v1/registration_tokens/new", bad); res.Status != 400 || res.ErrCode != "M_INVALID_PARAM" {
			t.Fatalf("%v: %d %s", bad, res.Status, res.Body)
		}
	}
	anon.MustDo(t, http.MethodPost, "register", map[string]any{"username": "newbie", "password": "secret12",
		"auth": map[string]any{"type": "m.login.registration_token", "token": "invite-1"}})
	got := root.MustDo(t, http.MethodGet, "/_synapse/admin/v1/registration_tokens/invite-1", nil)
	if got.JSON["completed"] != float64(1) || got.JSON["pending"] != float64(0) || got.JSON["uses_allowed"] != float64(1) {
		t.Fatalf("token after use: %s", got.Body)
	}
	if res := root.Do(t, http.MethodGet, "/_synapse/admin/v1/registration_tokens/nope", nil); res.Status != 404 {
		t.Fatalf("unknown token: %d %s", res.Status, res.Body)
	}
}

func TestTrustedProxy(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) {
		c.Listen.TrustedProxies = []string{"127.0.0.1"}
		c.RateLimits.Enabled = true
		c.RateLimits.Login = config.Bucket{PerSecond: 0.001, Burst: 1}
	})
	srv.Register(t, "alice")
	loginFrom := func(client string) (int, map[string]any) {
		body := strings.NewReader(`{"type":"m.login.password","user":"alice","password":"password"}`)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/_matrix/client/v3/login", body)
		req.Header.Set("X-Forwarded-For", client)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	code, first := loginFrom("203.0.113.7")
	if code != 200 {
		t.Fatalf("first client: %d", code)
	}
	if code, _ := loginFrom("203.0.113.7"); code != 429 {
		t.Fatalf("same client again: %d", code)
	}
	if code, _ := loginFrom("203.0.113.8"); code != 200 {
		t.Fatalf("other client behind the same proxy: %d", code)
	}
	dev, err := srv.HS.Store.GetDevice(context.Background(), "@alice:hs1.test", id.DeviceID(first["device_id"].(string)))
	if err != nil || dev.LastSeenIP != "203.0.113.7" {
		t.Fatalf("last_seen_ip: %+v %v", dev, err)
	}
}

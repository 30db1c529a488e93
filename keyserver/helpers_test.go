package keyserver_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"

	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
)

// keyPair is an ed25519 key with its unpadded base64 public key.
type keyPair struct {
	priv ed25519.PrivateKey
	pub  string
}

func newKeyPair(t testing.TB) keyPair {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{priv: priv, pub: base64.RawStdEncoding.EncodeToString(pub)}
}

// sign adds user's signature by key keyName to obj (signing JSON, appendix 3).
func sign(t testing.TB, obj map[string]any, user id.UserID, keyName string, k keyPair) map[string]any {
	t.Helper()
	unsigned := map[string]any{}
	for key, v := range obj {
		if key != "signatures" && key != "unsigned" {
			unsigned[key] = v
		}
	}
	msg, err := canonicaljson.Marshal(unsigned)
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.RawStdEncoding.EncodeToString(ed25519.Sign(k.priv, msg))
	sigs, _ := obj["signatures"].(map[string]any)
	if sigs == nil {
		sigs = map[string]any{}
	}
	// Round-trip through JSON so nested maps have one type.
	b, _ := json.Marshal(sigs)
	var norm map[string]map[string]string
	_ = json.Unmarshal(b, &norm)
	if norm == nil {
		norm = map[string]map[string]string{}
	}
	if norm[string(user)] == nil {
		norm[string(user)] = map[string]string{}
	}
	norm[string(user)]["ed25519:"+keyName] = sig
	out := map[string]any{}
	for key, v := range obj {
		out[key] = v
	}
	out["signatures"] = norm
	return out
}

// deviceKeys returns signed device_keys for c's device and the device's key.
func deviceKeys(t testing.TB, c *testserver.Client) (map[string]any, keyPair) {
	t.Helper()
	return deviceKeysExtra(t, c, nil)
}

// deviceKeysExtra is deviceKeys with extra top-level fields, signed too.
func deviceKeysExtra(t testing.TB, c *testserver.Client, extra map[string]any) (map[string]any, keyPair) {
	t.Helper()
	k := newKeyPair(t)
	curve := newKeyPair(t) // any 32 bytes do for the server
	dk := map[string]any{
		"user_id":    c.UserID,
		"device_id":  c.DeviceID,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys": map[string]string{
			"ed25519:" + string(c.DeviceID):    k.pub,
			"curve25519:" + string(c.DeviceID): curve.pub,
		},
	}
	for key, v := range extra {
		dk[key] = v
	}
	return sign(t, dk, c.UserID, string(c.DeviceID), k), k
}

// uploadDeviceKeys uploads signed device keys for c and returns the device's key.
func uploadDeviceKeys(t testing.TB, c *testserver.Client) keyPair {
	t.Helper()
	dk, k := deviceKeys(t, c)
	c.MustDo(t, http.MethodPost, "keys/upload", map[string]any{"device_keys": dk})
	return k
}

// login logs user in again as a new device.
func login(t testing.TB, srv *testserver.Server, user id.UserID, device string) *testserver.Client {
	t.Helper()
	res := srv.Anon().MustDo(t, http.MethodPost, "login", map[string]any{
		"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": string(user)},
		"password": "password", "device_id": device,
	})
	return &testserver.Client{S: srv, UserID: user, DeviceID: id.DeviceID(device), AccessToken: res.JSON["access_token"].(string), Password: "password"}
}

// sync runs GET /sync from since ("" for initial) with timeout 0.
func doSync(t testing.TB, c *testserver.Client, since string) *testserver.Response {
	t.Helper()
	path := "sync?timeout=0"
	if since != "" {
		path += "&since=" + since
	}
	return c.MustDo(t, http.MethodGet, path, nil)
}

// field walks a decoded JSON value by keys.
func field(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func strList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func wantErr(t testing.TB, res *testserver.Response, status int, code string) {
	t.Helper()
	if res.Status != status || res.ErrCode != code {
		t.Fatalf("got %d %q, want %d %q: %s", res.Status, res.ErrCode, status, code, res.Body)
	}
}

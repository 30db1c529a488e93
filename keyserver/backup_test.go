package keyserver_test

import (
	"net/http"
	"testing"

	"parley/internal/testserver"
)

func backupKey(first, forwarded int, verified bool, marker string) map[string]any {
	return map[string]any{"first_message_index": first, "forwarded_count": forwarded, "is_verified": verified,
		"session_data": map[string]any{"ciphertext": marker, "ephemeral": "e", "mac": "m"}}
}

func TestKeyBackup(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	const alg = "m.megolm_backup.v1.curve25519-aes-sha2"

	wantErr(t, alice.Do(t, http.MethodGet, "room_keys/version", nil), 404, "M_NOT_FOUND")
	wantErr(t, alice.Do(t, http.MethodPost, "room_keys/version", map[string]any{"algorithm": alg}), 400, "M_MISSING_PARAM")
	v1 := alice.MustDo(t, http.MethodPost, "room_keys/version", map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "a"}}).JSON["version"].(string)
	g := alice.MustDo(t, http.MethodGet, "room_keys/version", nil)
	if g.JSON["version"] != v1 || g.JSON["count"] != float64(0) || g.JSON["algorithm"] != alg || field(g.JSON, "auth_data", "public_key") != "a" || g.JSON["etag"] == nil {
		t.Fatalf("get version: %s", g.Body)
	}
	wantErr(t, bob.Do(t, http.MethodGet, "room_keys/version/"+v1, nil), 404, "M_NOT_FOUND")

	// Keys at all three levels.
	room := "!r:hs1.test"
	put := alice.MustDo(t, http.MethodPut, "room_keys/keys/"+room+"/s1?version="+v1, backupKey(5, 0, false, "first"))
	if put.JSON["count"] != float64(1) || put.JSON["etag"] == nil {
		t.Fatalf("put one: %s", put.Body)
	}
	etag1 := put.JSON["etag"]
	alice.MustDo(t, http.MethodPut, "room_keys/keys/"+room+"?version="+v1, map[string]any{"sessions": map[string]any{"s2": backupKey(0, 0, false, "s2")}})
	put = alice.MustDo(t, http.MethodPut, "room_keys/keys?version="+v1, map[string]any{"rooms": map[string]any{"!other:hs1.test": map[string]any{"sessions": map[string]any{"s3": backupKey(0, 0, true, "s3")}}}})
	if put.JSON["count"] != float64(3) || put.JSON["etag"] == etag1 {
		t.Fatalf("put all: %s", put.Body)
	}

	// Replacement rules on s1 (stored: unverified, index 5, forwarded 0).
	steps := []struct {
		key  map[string]any
		want string
	}{
		{backupKey(9, 0, false, "worse index"), "first"},
		{backupKey(5, 1, false, "more forwarded"), "first"},
		{backupKey(5, 0, false, "equal"), "first"},
		{backupKey(2, 3, false, "lower index"), "lower index"},
		{backupKey(2, 2, false, "fewer forwards"), "fewer forwards"},
		{backupKey(50, 9, true, "verified"), "verified"},
		{backupKey(0, 0, false, "unverified lower index"), "verified"},
	}
	for _, st := range steps {
		alice.MustDo(t, http.MethodPut, "room_keys/keys/"+room+"/s1?version="+v1, st.key)
		got := alice.MustDo(t, http.MethodGet, "room_keys/keys/"+room+"/s1?version="+v1, nil)
		if field(got.JSON, "session_data", "ciphertext") != st.want {
			t.Fatalf("after %v: got %s, want %q", st.key["session_data"], got.Body, st.want)
		}
	}
	all := alice.MustDo(t, http.MethodGet, "room_keys/keys?version="+v1, nil)
	if field(all.JSON, "rooms", room, "sessions", "s2", "first_message_index") != float64(0) || field(all.JSON, "rooms", "!other:hs1.test", "sessions", "s3") == nil {
		t.Fatalf("get all: %s", all.Body)
	}
	if r := alice.MustDo(t, http.MethodGet, "room_keys/keys/!none:hs1.test?version="+v1, nil); string(r.Body) != `{"sessions":{}}` {
		t.Fatalf("empty room: %s", r.Body)
	}
	wantErr(t, alice.Do(t, http.MethodGet, "room_keys/keys/"+room+"/nope?version="+v1, nil), 404, "M_NOT_FOUND")
	wantErr(t, alice.Do(t, http.MethodGet, "room_keys/keys?version=99", nil), 404, "M_NOT_FOUND")
	wantErr(t, alice.Do(t, http.MethodGet, "room_keys/keys", nil), 400, "M_MISSING_PARAM")
	wantErr(t, alice.Do(t, http.MethodPut, "room_keys/keys/"+room+"/s9?version="+v1, map[string]any{"first_message_index": 1}), 400, "M_BAD_JSON")

	// A new version makes the old one stale: writes get M_WRONG_ROOM_KEYS_VERSION.
	v2 := alice.MustDo(t, http.MethodPost, "room_keys/version", map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "b"}}).JSON["version"].(string)
	res := alice.Do(t, http.MethodPut, "room_keys/keys/"+room+"/s1?version="+v1, backupKey(0, 0, true, "x"))
	wantErr(t, res, 403, "M_WRONG_ROOM_KEYS_VERSION")
	if res.JSON["current_version"] != v2 {
		t.Fatalf("current_version: %s", res.Body)
	}
	wantErr(t, alice.Do(t, http.MethodPut, "room_keys/keys/"+room+"/s1?version=77", backupKey(0, 0, true, "x")), 404, "M_NOT_FOUND")
	if g := alice.MustDo(t, http.MethodGet, "room_keys/version", nil); g.JSON["version"] != v2 || g.JSON["count"] != float64(0) {
		t.Fatalf("current version: %s", g.Body)
	}

	// Update: only auth_data; algorithm and version must match.
	wantErr(t, alice.Do(t, http.MethodPut, "room_keys/version/"+v2, map[string]any{"algorithm": "other", "auth_data": map[string]any{}}), 400, "M_INVALID_PARAM")
	wantErr(t, alice.Do(t, http.MethodPut, "room_keys/version/"+v2, map[string]any{"algorithm": alg, "auth_data": map[string]any{}, "version": v1}), 400, "M_INVALID_PARAM")
	wantErr(t, alice.Do(t, http.MethodPut, "room_keys/version/99", map[string]any{"algorithm": alg, "auth_data": map[string]any{}}), 404, "M_NOT_FOUND")
	alice.MustDo(t, http.MethodPut, "room_keys/version/"+v2, map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "c"}, "version": v2})
	if g := alice.MustDo(t, http.MethodGet, "room_keys/version/"+v2, nil); field(g.JSON, "auth_data", "public_key") != "c" {
		t.Fatalf("update: %s", g.Body)
	}

	// Delete keys, then versions.
	alice.MustDo(t, http.MethodPut, "room_keys/keys/"+room+"/s1?version="+v2, backupKey(0, 0, true, "x"))
	if d := alice.MustDo(t, http.MethodDelete, "room_keys/keys/"+room+"?version="+v2, nil); d.JSON["count"] != float64(0) {
		t.Fatalf("delete keys: %s", d.Body)
	}
	alice.MustDo(t, http.MethodDelete, "room_keys/version/"+v2, nil)
	alice.MustDo(t, http.MethodDelete, "room_keys/version/"+v2, nil) // deleting again succeeds
	wantErr(t, alice.Do(t, http.MethodDelete, "room_keys/version/99", nil), 404, "M_NOT_FOUND")
	wantErr(t, alice.Do(t, http.MethodGet, "room_keys/version/"+v2, nil), 404, "M_NOT_FOUND")
	// The older version is current again once the newer one is deleted.
	if g := alice.MustDo(t, http.MethodGet, "room_keys/version", nil); g.JSON["version"] != v1 || g.JSON["count"] != float64(3) {
		t.Fatalf("after delete: %s", g.Body)
	}
}

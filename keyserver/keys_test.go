package keyserver_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"parley/internal/config"
	"parley/internal/testserver"
)

func TestUploadQueryClaim(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")

	dk, _ := deviceKeys(t, alice)
	otks := map[string]any{}
	for i := 0; i < 3; i++ {
		otks[fmt.Sprintf("signed_curve25519:K%d", i)] = map[string]any{"key": fmt.Sprintf("otk%d", i)}
	}
	res := alice.MustDo(t, http.MethodPost, "keys/upload", map[string]any{
		"device_keys":   dk,
		"one_time_keys": otks,
		"fallback_keys": map[string]any{"signed_curve25519:FB": map[string]any{"key": "fb", "fallback": true}},
	})
	if n := field(res.JSON, "one_time_key_counts", "signed_curve25519"); n != float64(3) {
		t.Fatalf("counts after upload: %s", res.Body)
	}
	// Re-uploading the same one-time key IDs does not duplicate them.
	res = alice.MustDo(t, http.MethodPost, "keys/upload", map[string]any{"one_time_keys": otks})
	if n := field(res.JSON, "one_time_key_counts", "signed_curve25519"); n != float64(3) {
		t.Fatalf("counts after re-upload: %s", res.Body)
	}

	// Sync carries the counts and the unused fallback key type.
	s := doSync(t, alice, "")
	if n := field(s.JSON, "device_one_time_keys_count", "signed_curve25519"); n != float64(3) {
		t.Fatalf("sync counts: %s", s.Body)
	}
	if fb := strList(field(s.JSON, "device_unused_fallback_key_types")); len(fb) != 1 || fb[0] != "signed_curve25519" {
		t.Fatalf("sync fallback types: %s", s.Body)
	}

	// Bob sees Alice's device keys, with the device display name in unsigned.
	q := bob.MustDo(t, http.MethodPost, "keys/query", map[string]any{"device_keys": map[string]any{string(alice.UserID): []string{}}})
	got := field(q.JSON, "device_keys", string(alice.UserID), string(alice.DeviceID))
	if field(got, "keys", "ed25519:"+string(alice.DeviceID)) != dk["keys"].(map[string]string)["ed25519:"+string(alice.DeviceID)] {
		t.Fatalf("query: %s", q.Body)
	}
	if _, ok := field(got, "signatures", string(alice.UserID)).(map[string]any); !ok {
		t.Fatalf("query lost signatures: %s", q.Body)
	}
	for _, k := range []string{"failures", "master_keys", "self_signing_keys", "user_signing_keys"} {
		if _, ok := q.JSON[k].(map[string]any); !ok {
			t.Fatalf("query lacks %s: %s", k, q.Body)
		}
	}
	// A remote user is reported in failures, not silently dropped.
	q = bob.MustDo(t, http.MethodPost, "keys/query", map[string]any{"device_keys": map[string]any{"@x:remote.test": []string{}}})
	if field(q.JSON, "failures", "remote.test") == nil {
		t.Fatalf("remote failure missing: %s", q.Body)
	}

	// Claims hand out the three one-time keys, then the fallback key (again and again).
	seen := map[string]bool{}
	for i := 0; i < 5; i++ {
		c := bob.MustDo(t, http.MethodPost, "keys/claim", map[string]any{"one_time_keys": map[string]any{string(alice.UserID): map[string]string{string(alice.DeviceID): "signed_curve25519"}}})
		keys, _ := field(c.JSON, "one_time_keys", string(alice.UserID), string(alice.DeviceID)).(map[string]any)
		if len(keys) != 1 {
			t.Fatalf("claim %d: %s", i, c.Body)
		}
		for k := range keys {
			if i < 3 && seen[k] {
				t.Fatalf("one-time key %s claimed twice", k)
			}
			if i >= 3 && k != "signed_curve25519:FB" {
				t.Fatalf("claim %d after exhaustion gave %s, want the fallback key", i, k)
			}
			seen[k] = true
		}
	}
	s = doSync(t, alice, "")
	if n := field(s.JSON, "device_one_time_keys_count", "signed_curve25519"); n != float64(0) {
		t.Fatalf("sync counts after claims: %s", s.Body)
	}
	if fb := strList(field(s.JSON, "device_unused_fallback_key_types")); len(fb) != 0 {
		t.Fatalf("used fallback key still listed: %s", s.Body)
	}
	// A new fallback key is unused again.
	alice.MustDo(t, http.MethodPost, "keys/upload", map[string]any{"fallback_keys": map[string]any{"signed_curve25519:FB2": map[string]any{"key": "fb2", "fallback": true}}})
	if fb := strList(field(doSync(t, alice, "").JSON, "device_unused_fallback_key_types")); len(fb) != 1 {
		t.Fatal("new fallback key not listed as unused")
	}

	// Deleting the device removes its keys from /keys/query.
	phone := login(t, srv, alice.UserID, "PHONE")
	uploadDeviceKeys(t, phone)
	q = bob.MustDo(t, http.MethodPost, "keys/query", map[string]any{"device_keys": map[string]any{string(alice.UserID): []string{}}})
	if devs, _ := field(q.JSON, "device_keys", string(alice.UserID)).(map[string]any); len(devs) != 2 {
		t.Fatalf("want 2 devices: %s", q.Body)
	}
	alice.MustDo(t, http.MethodPost, "delete_devices", map[string]any{"devices": []string{"PHONE"},
		"auth": map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "password"}})
	q = bob.MustDo(t, http.MethodPost, "keys/query", map[string]any{"device_keys": map[string]any{string(alice.UserID): []string{}}})
	if devs, _ := field(q.JSON, "device_keys", string(alice.UserID)).(map[string]any); len(devs) != 1 {
		t.Fatalf("deleted device still listed: %s", q.Body)
	}
}

func TestUploadValidation(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")

	dk, _ := deviceKeys(t, alice)
	tampered := map[string]any{}
	for k, v := range dk {
		tampered[k] = v
	}
	tampered["algorithms"] = []string{"m.megolm.v1.aes-sha2"}
	other, _ := deviceKeys(t, bob)
	unsigned := map[string]any{}
	for k, v := range dk {
		if k != "signatures" {
			unsigned[k] = v
		}
	}
	tests := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"not json", `{`, 400, "M_NOT_JSON"},
		{"tampered after signing", map[string]any{"device_keys": tampered}, 400, "M_INVALID_SIGNATURE"},
		{"without signatures", map[string]any{"device_keys": unsigned}, 400, "M_BAD_JSON"},
		{"signed by another key", map[string]any{"device_keys": sign(t, unsigned, alice.UserID, string(alice.DeviceID), newKeyPair(t))}, 400, "M_INVALID_SIGNATURE"},
		{"no algorithms", map[string]any{"device_keys": map[string]any{"user_id": alice.UserID, "device_id": alice.DeviceID}}, 400, "M_BAD_JSON"},
		{"another user's keys", map[string]any{"device_keys": other}, 400, "M_INVALID_PARAM"},
		{"bad one-time key id", map[string]any{"one_time_keys": map[string]any{"nocolon": map[string]any{"key": "x"}}}, 400, "M_BAD_JSON"},
		{"two fallback keys of one algorithm", map[string]any{"fallback_keys": map[string]any{"signed_curve25519:A": map[string]any{"key": "a"}, "signed_curve25519:B": map[string]any{"key": "b"}}}, 400, "M_INVALID_PARAM"},
		{"one-time key not an object", map[string]any{"one_time_keys": map[string]any{"signed_curve25519:A": 5}}, 400, "M_BAD_JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, alice.Do(t, http.MethodPost, "keys/upload", tt.body), tt.status, tt.code)
		})
	}
	wantErr(t, alice.Do(t, http.MethodPost, "keys/query", map[string]any{}), 400, "M_MISSING_PARAM")
	wantErr(t, alice.Do(t, http.MethodPost, "keys/claim", map[string]any{}), 400, "M_MISSING_PARAM")
	wantErr(t, srv.Anon().Do(t, http.MethodPost, "keys/upload", map[string]any{}), 401, "M_MISSING_TOKEN")
}

// TestConcurrentClaims claims from many goroutines at once: every one-time
// key must be handed out exactly once, the rest get the fallback key.
func TestConcurrentClaims(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	const keys, claimers = 15, 30
	otks := map[string]any{}
	for i := 0; i < keys; i++ {
		otks[fmt.Sprintf("signed_curve25519:K%02d", i)] = map[string]any{"key": fmt.Sprintf("otk%d", i)}
	}
	alice.MustDo(t, http.MethodPost, "keys/upload", map[string]any{"one_time_keys": otks,
		"fallback_keys": map[string]any{"signed_curve25519:FB": map[string]any{"key": "fb", "fallback": true}}})
	clients := make([]*testserver.Client, 3)
	for i := range clients {
		clients[i] = srv.Register(t, fmt.Sprintf("claimer%d", i))
	}
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan string, claimers)
	for i := 0; i < claimers; i++ {
		wg.Add(1)
		go func(c *testserver.Client) {
			defer wg.Done()
			res := c.Do(t, http.MethodPost, "keys/claim", map[string]any{"one_time_keys": map[string]any{string(alice.UserID): map[string]string{string(alice.DeviceID): "signed_curve25519"}}})
			if res.Status != 200 {
				errs <- string(res.Body)
				return
			}
			m, _ := field(res.JSON, "one_time_keys", string(alice.UserID), string(alice.DeviceID)).(map[string]any)
			mu.Lock()
			for k := range m {
				got[k]++
			}
			mu.Unlock()
		}(clients[i%len(clients)])
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("claim failed: %s", e)
	}
	total := 0
	for k, n := range got {
		total += n
		if k != "signed_curve25519:FB" && n != 1 {
			t.Errorf("one-time key %s handed out %d times", k, n)
		}
	}
	if len(got) != keys+1 || got["signed_curve25519:FB"] != claimers-keys || total != claimers {
		t.Fatalf("distribution: %v", got)
	}
}

// TestUploadUnverified: with e2ee.verify_device_key_signatures off (as for
// SyTest), placeholder keys are accepted; structure is still checked.
func TestUploadUnverified(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.E2EE.VerifyDeviceKeySignatures = false })
	alice := srv.Register(t, "alice")
	dk := map[string]any{
		"user_id": alice.UserID, "device_id": alice.DeviceID, "algorithms": []string{"m.megolm.v1.aes-sha2"},
		"keys":       map[string]string{"ed25519:" + string(alice.DeviceID): "ed25519+key"},
		"signatures": map[string]any{string(alice.UserID): map[string]string{"ed25519:" + string(alice.DeviceID): "self+signature"}},
	}
	alice.MustDo(t, http.MethodPost, "keys/upload", map[string]any{"device_keys": dk})
	q := alice.MustDo(t, http.MethodPost, "keys/query", map[string]any{"device_keys": map[string]any{string(alice.UserID): []string{}}})
	if field(q.JSON, "device_keys", string(alice.UserID), string(alice.DeviceID), "keys", "ed25519:"+string(alice.DeviceID)) != "ed25519+key" {
		t.Fatalf("query: %s", q.Body)
	}
	wantErr(t, alice.Do(t, http.MethodPost, "keys/upload", map[string]any{"device_keys": map[string]any{"user_id": alice.UserID, "device_id": alice.DeviceID}}), 400, "M_BAD_JSON")
}

// TestClaimInUploadOrder: one-time keys are claimed in the order they were
// uploaded (MSC4225), not by key ID.
func TestClaimInUploadOrder(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	for _, name := range []string{"ZZ", "MM", "AA"} {
		alice.MustDo(t, http.MethodPost, "keys/upload", map[string]any{
			"one_time_keys": map[string]any{"signed_curve25519:" + name: map[string]any{"key": "k" + name}}})
	}
	for _, want := range []string{"ZZ", "MM", "AA"} {
		c := bob.MustDo(t, http.MethodPost, "keys/claim", map[string]any{"one_time_keys": map[string]any{string(alice.UserID): map[string]string{string(alice.DeviceID): "signed_curve25519"}}})
		keys, _ := field(c.JSON, "one_time_keys", string(alice.UserID), string(alice.DeviceID)).(map[string]any)
		if _, ok := keys["signed_curve25519:"+want]; !ok || len(keys) != 1 {
			t.Fatalf("claim: want %s, got %s", want, c.Body)
		}
	}
}

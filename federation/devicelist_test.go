package federation_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
)

// TestDeviceChangesReachOtherServers: a new login, a device rename, a
// device deletion and a cross-signing key upload each reach the servers that
// share a room with the user (m.device_list_update, m.signing_key_update),
// whose users then see the user in device_lists.changed.
func TestDeviceChangesReachOtherServers(t *testing.T) {
	f := joinedPair(t)
	var mu sync.Mutex
	var edus []map[string]any
	watchHS2Transactions(t, f, func(txn sentTxn) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range txn.EDUs {
			edus = append(edus, map[string]any{"edu_type": e.Type, "content": e.Content})
		}
	})
	edu := func(eduType string, match func(c map[string]any) bool) map[string]any {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range edus {
			if c, _ := e["content"].(map[string]any); e["edu_type"] == eduType && c["user_id"] == string(f.alice.UserID) && match(c) {
				return c
			}
		}
		return nil
	}
	since := f.bob.MustDo(t, http.MethodGet, "sync", nil).JSON["next_batch"].(string)
	sawChange := func(what string) {
		t.Helper()
		eventually(t, what, func() bool {
			res := f.bob.MustDo(t, http.MethodGet, "sync?timeout=100&since="+url.QueryEscape(since), nil)
			since = res.JSON["next_batch"].(string)
			dl, _ := res.JSON["device_lists"].(map[string]any)
			changed, _ := dl["changed"].([]any)
			return slices.Contains(changed, any(string(f.alice.UserID)))
		})
	}

	// A new login.
	res := f.hs1.Anon().MustDo(t, http.MethodPost, "login", map[string]any{
		"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": f.alice.UserID}, "password": "password",
	})
	phone := res.JSON["device_id"].(string)
	sawChange("new device")
	if c := edu("m.device_list_update", func(c map[string]any) bool { return c["device_id"] == phone }); c == nil || c["deleted"] != false {
		t.Fatalf("update for the new device: %v", c)
	}

	// A rename.
	f.alice.MustDo(t, http.MethodPut, "devices/"+phone, map[string]any{"display_name": "Phone"})
	sawChange("renamed device")
	if c := edu("m.device_list_update", func(c map[string]any) bool { return c["device_display_name"] == "Phone" }); c == nil || c["device_id"] != phone {
		t.Fatalf("update for the rename: %v", c)
	}

	// A deletion.
	auth := map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": f.alice.UserID}, "password": "password"}
	del := f.alice.Do(t, http.MethodDelete, "devices/"+phone, map[string]any{"auth": auth})
	if del.Status == http.StatusUnauthorized {
		auth["session"] = del.JSON["session"]
		del = f.alice.Do(t, http.MethodDelete, "devices/"+phone, map[string]any{"auth": auth})
	}
	if del.Status != 200 {
		t.Fatalf("delete device: %d %s", del.Status, del.Body)
	}
	sawChange("deleted device")
	if c := edu("m.device_list_update", func(c map[string]any) bool { return c["device_id"] == phone && c["deleted"] == true }); c == nil {
		t.Fatal("no update for the deleted device")
	}

	// A cross-signing master key.
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := base64.RawStdEncoding.EncodeToString(pub)
	master := map[string]any{"user_id": f.alice.UserID, "usage": []string{"master"}, "keys": map[string]string{"ed25519:" + k: k}}
	f.alice.MustDo(t, http.MethodPost, "keys/device_signing/upload", map[string]any{"master_key": master})
	sawChange("cross-signing key")
	if c := edu("m.signing_key_update", func(c map[string]any) bool { return c["master_key"] != nil }); c == nil {
		t.Fatal("no m.signing_key_update")
	}
}

package keyserver_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"parley/internal/testserver"
)

// TestSignedDevicesOverFederation: a device its owner signed with the
// self-signing key is seen signed by users of another server, both in the
// m.device_list_update that announces it and when they query the keys.
func TestSignedDevicesOverFederation(t *testing.T) {
	s := testserver.NewFederation(t, []string{"hs1.test", "hs2.test"})
	hs1, hs2 := s[0], s[1]
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	room := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(room)+"?server_name=hs1.test", map[string]any{})

	aliceDK, _ := deviceKeys(t, alice)
	alice.MustDo(t, http.MethodPost, "keys/upload", map[string]any{"device_keys": aliceDK})
	acs, _ := uploadCrossSigning(t, alice, nil)
	signed := sign(t, aliceDK, alice.UserID, acs.self.pub, acs.self)
	alice.MustDo(t, http.MethodPost, "keys/signatures/upload", map[string]any{string(alice.UserID): map[string]any{string(alice.DeviceID): signed}})

	selfSigned := func() bool {
		q := bob.MustDo(t, http.MethodPost, "keys/query", map[string]any{"device_keys": map[string]any{string(alice.UserID): []string{}}})
		dev := field(q.JSON, "device_keys", string(alice.UserID), string(alice.DeviceID))
		sigs, _ := field(dev, "signatures", string(alice.UserID)).(map[string]any)
		_, ok := sigs["ed25519:"+acs.self.pub]
		return ok
	}
	deadline := time.Now().Add(10 * time.Second)
	for !selfSigned() {
		if time.Now().After(deadline) {
			t.Fatal("bob on hs2 does not see alice's device signed by her self-signing key")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

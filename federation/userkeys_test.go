package federation_test

import (
	"context"
	"net/http"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/internal/config"
	"parley/internal/testserver"
)

func TestUserDevicesAndKeysOverFederation(t *testing.T) {
	s := testserver.NewFederation(t, []string{"hs1.test", "hs2.test"}, func(c *config.Config) { c.E2EE.VerifyDeviceKeySignatures = false })
	hs1, hs2 := s[0], s[1]
	alice := hs1.Register(t, "alice")
	dev := string(alice.DeviceID)
	alice.MustDo(t, http.MethodPost, "keys/upload", map[string]any{
		"device_keys": map[string]any{
			"user_id": alice.UserID, "device_id": dev, "algorithms": []string{"m.olm.v1.curve25519-aes-sha2"},
			"keys":       map[string]any{"curve25519:" + dev: "curvekey", "ed25519:" + dev: "edkey"},
			"signatures": map[string]any{string(alice.UserID): map[string]any{"ed25519:" + dev: "sig"}},
		},
		"one_time_keys": map[string]any{"signed_curve25519:AAAA": map[string]any{"key": "otk1"}},
	})
	c := fedClient(t, hs2)
	ctx := context.Background()

	var devices struct {
		UserID  id.UserID `json:"user_id"`
		Devices []struct {
			DeviceID id.DeviceID    `json:"device_id"`
			Keys     map[string]any `json:"keys"`
		} `json:"devices"`
	}
	if err := c.MakeRequest(ctx, "hs1.test", true, http.MethodGet, mfedPath("v1", "user", "devices", string(alice.UserID)), nil, &devices); err != nil {
		t.Fatalf("user/devices: %v", err)
	}
	if devices.UserID != alice.UserID || len(devices.Devices) != 1 || devices.Devices[0].DeviceID != alice.DeviceID || devices.Devices[0].Keys["device_id"] != dev {
		t.Fatalf("user/devices: %+v", devices)
	}

	var query struct {
		DeviceKeys map[id.UserID]map[id.DeviceID]map[string]any `json:"device_keys"`
	}
	if err := c.MakeRequest(ctx, "hs1.test", true, http.MethodPost, mfedPath("v1", "user", "keys", "query"),
		map[string]any{"device_keys": map[string]any{string(alice.UserID): []string{}}}, &query); err != nil {
		t.Fatalf("user/keys/query: %v", err)
	}
	if k := query.DeviceKeys[alice.UserID][alice.DeviceID]; k == nil || k["keys"].(map[string]any)["curve25519:"+dev] != "curvekey" {
		t.Fatalf("user/keys/query: %+v", query)
	}

	claim := func() map[string]any {
		var out struct {
			OneTimeKeys map[id.UserID]map[id.DeviceID]map[string]any `json:"one_time_keys"`
		}
		if err := c.MakeRequest(ctx, "hs1.test", true, http.MethodPost, mfedPath("v1", "user", "keys", "claim"),
			map[string]any{"one_time_keys": map[string]any{string(alice.UserID): map[string]any{dev: "signed_curve25519"}}}, &out); err != nil {
			t.Fatalf("user/keys/claim: %v", err)
		}
		return out.OneTimeKeys[alice.UserID][alice.DeviceID]
	}
	if k := claim(); k["signed_curve25519:AAAA"] == nil {
		t.Fatalf("first claim: %v", k)
	}
	if k := claim(); len(k) != 0 {
		t.Fatalf("one-time key handed out twice: %v", k)
	}
	if err := c.MakeRequest(ctx, "hs1.test", true, http.MethodGet, mfedPath("v1", "user", "devices", "@bob:hs2.test"), nil, &devices); !isErr(err, 404, "M_NOT_FOUND") {
		t.Fatalf("devices of a non-local user: %v", err)
	}
}

func TestClientKeysAndToDeviceAcrossServers(t *testing.T) {
	s := testserver.NewFederation(t, []string{"hs1.test", "hs2.test"}, func(c *config.Config) { c.E2EE.VerifyDeviceKeySignatures = false })
	hs1, hs2 := s[0], s[1]
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	dev := string(alice.DeviceID)
	alice.MustDo(t, http.MethodPost, "keys/upload", map[string]any{
		"device_keys": map[string]any{
			"user_id": alice.UserID, "device_id": dev, "algorithms": []string{"m.olm.v1.curve25519-aes-sha2"},
			"keys":       map[string]any{"curve25519:" + dev: "curvekey", "ed25519:" + dev: "edkey"},
			"signatures": map[string]any{string(alice.UserID): map[string]any{"ed25519:" + dev: "sig"}},
		},
		"one_time_keys": map[string]any{"signed_curve25519:BBBB": map[string]any{"key": "otk2"}},
	})
	res := bob.MustDo(t, http.MethodPost, "keys/query", map[string]any{"device_keys": map[string]any{string(alice.UserID): []string{}}})
	dk, _ := res.JSON["device_keys"].(map[string]any)[string(alice.UserID)].(map[string]any)
	if dk[dev] == nil {
		t.Fatalf("bob's /keys/query for alice@hs1: %s", res.Body)
	}
	res = bob.MustDo(t, http.MethodPost, "keys/claim", map[string]any{"one_time_keys": map[string]any{string(alice.UserID): map[string]any{dev: "signed_curve25519"}}})
	otk, _ := res.JSON["one_time_keys"].(map[string]any)[string(alice.UserID)].(map[string]any)
	if otk == nil || otk[dev].(map[string]any)["signed_curve25519:BBBB"] == nil {
		t.Fatalf("bob's /keys/claim for alice@hs1: %s", res.Body)
	}
	bob.MustDo(t, http.MethodPut, "sendToDevice/m.room_key_request/txn1", map[string]any{"messages": map[string]any{
		string(alice.UserID): map[string]any{dev: map[string]any{"hello": "from hs2"}},
	}})
	eventually(t, "to-device message on hs1", func() bool {
		res := alice.MustDo(t, http.MethodGet, "sync", nil)
		td, _ := res.JSON["to_device"].(map[string]any)
		evs, _ := td["events"].([]any)
		for _, e := range evs {
			ev := e.(map[string]any)
			if ev["sender"] == string(bob.UserID) && ev["type"] == "m.room_key_request" && ev["content"].(map[string]any)["hello"] == "from hs2" {
				return true
			}
		}
		return false
	})
}

func TestDeviceListUpdateAcrossServers(t *testing.T) {
	f := joinedPair(t)
	since := f.alice.MustDo(t, http.MethodGet, "sync", nil).JSON["next_batch"].(string)
	dev := string(f.bob.DeviceID)
	f.hs2.HS.Config.E2EE.VerifyDeviceKeySignatures = false
	f.bob.MustDo(t, http.MethodPost, "keys/upload", map[string]any{
		"device_keys": map[string]any{
			"user_id": f.bob.UserID, "device_id": dev, "algorithms": []string{"m.olm.v1.curve25519-aes-sha2"},
			"keys":       map[string]any{"curve25519:" + dev: "c", "ed25519:" + dev: "e"},
			"signatures": map[string]any{string(f.bob.UserID): map[string]any{"ed25519:" + dev: "sig"}},
		},
	})
	eventually(t, "bob in alice's device_lists.changed", func() bool {
		res := f.alice.MustDo(t, http.MethodGet, "sync?timeout=0&since="+since, nil)
		dl, _ := res.JSON["device_lists"].(map[string]any)
		changed, _ := dl["changed"].([]any)
		for _, u := range changed {
			if u == string(f.bob.UserID) {
				return true
			}
		}
		return false
	})
}

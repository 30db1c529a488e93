package federation_test

import (
	"net/http"
	"sync"
	"testing"
)

// m.device_list_update EDUs carry prev_id: the user's previous update, so a
// receiver that missed one knows to resync.
func TestDeviceListUpdatePrevID(t *testing.T) {
	f := joinedPair(t)
	f.hs1.HS.Config.E2EE.VerifyDeviceKeySignatures = false
	var mu sync.Mutex
	var updates []map[string]any
	watchHS2Transactions(t, f, func(txn sentTxn) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range txn.EDUs {
			if e.Type == "m.device_list_update" && e.Content["user_id"] == string(f.alice.UserID) {
				updates = append(updates, e.Content)
			}
		}
	})
	upload := func(key string) {
		f.alice.MustDo(t, http.MethodPost, "keys/upload", map[string]any{"device_keys": map[string]any{
			"user_id": f.alice.UserID, "device_id": f.alice.DeviceID,
			"algorithms": []string{"m.olm.v1.curve25519-aes-sha2"},
			"keys":       map[string]any{"ed25519:" + string(f.alice.DeviceID): key},
			"signatures": map[string]any{},
		}})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(updates) }
	upload("key1")
	eventually(t, "first update", func() bool { return count() >= 1 })
	upload("key2")
	eventually(t, "second update", func() bool { return count() >= 2 })
	mu.Lock()
	defer mu.Unlock()
	prev, _ := updates[1]["prev_id"].([]any)
	if len(prev) != 1 || prev[0] != updates[0]["stream_id"] {
		t.Fatalf("prev_id %v, want [%v]", updates[1]["prev_id"], updates[0]["stream_id"])
	}
}

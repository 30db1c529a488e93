package keyserver_test

import (
	"net/http"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
)

const dehydratedPath = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"

// dehydratedBody is a PUT /dehydrated_device body for device devID of c.
func dehydratedBody(t *testing.T, c *testserver.Client, devID id.DeviceID, marker string) map[string]any {
	t.Helper()
	shadow := *c
	shadow.DeviceID = devID
	dk, _ := deviceKeysExtra(t, &shadow, map[string]any{"dehydrated": true})
	return map[string]any{
		"device_id":                   devID,
		"device_data":                 map[string]any{"algorithm": "org.matrix.msc3814.v1.olm", "device_pickle": marker},
		"initial_device_display_name": "Dehydrated",
		"device_keys":                 dk,
		"one_time_keys":               map[string]any{"signed_curve25519:AAA": map[string]any{"key": "k"}},
	}
}

func TestDehydratedDevice(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")

	wantErr(t, alice.Do(t, http.MethodGet, dehydratedPath, nil), 404, "M_NOT_FOUND")
	wantErr(t, alice.Do(t, http.MethodDelete, dehydratedPath, nil), 404, "M_NOT_FOUND")
	wantErr(t, alice.Do(t, http.MethodPut, dehydratedPath, map[string]any{"device_id": "X", "device_data": map[string]any{}}), 400, "M_MISSING_PARAM")
	bad := dehydratedBody(t, alice, "DEHY1", "p1")
	bad["device_id"] = "OTHER"
	wantErr(t, alice.Do(t, http.MethodPut, dehydratedPath, bad), 400, "M_INVALID_PARAM")
	wantErr(t, alice.Do(t, http.MethodPut, dehydratedPath, dehydratedBody(t, alice, alice.DeviceID, "p0")), 400, "M_INVALID_PARAM")

	res := alice.MustDo(t, http.MethodPut, dehydratedPath, dehydratedBody(t, alice, "DEHY1", "p1"))
	if res.JSON["device_id"] != "DEHY1" {
		t.Fatalf("put: %s", res.Body)
	}
	g := alice.MustDo(t, http.MethodGet, dehydratedPath, nil)
	if g.JSON["device_id"] != "DEHY1" || field(g.JSON, "device_data", "device_pickle") != "p1" {
		t.Fatalf("get: %s", g.Body)
	}
	// Other users see the device and can claim its one-time key.
	q := bob.MustDo(t, http.MethodPost, "keys/query", map[string]any{"device_keys": map[string]any{string(alice.UserID): []string{}}})
	if field(q.JSON, "device_keys", string(alice.UserID), "DEHY1", "dehydrated") != true {
		t.Fatalf("query: %s", q.Body)
	}
	c := bob.MustDo(t, http.MethodPost, "keys/claim", map[string]any{"one_time_keys": map[string]any{string(alice.UserID): map[string]string{"DEHY1": "signed_curve25519"}}})
	if field(c.JSON, "one_time_keys", string(alice.UserID), "DEHY1", "signed_curve25519:AAA") == nil {
		t.Fatalf("claim: %s", c.Body)
	}

	// To-device messages for it are fetched in batches and kept.
	for i, txn := range []string{"a", "b"} {
		bob.MustDo(t, http.MethodPut, "sendToDevice/m.room.encrypted/"+txn, map[string]any{"messages": map[string]any{string(alice.UserID): map[string]any{"DEHY1": map[string]any{"i": i}}}})
	}
	evPath := dehydratedPath + "/DEHY1/events"
	e := alice.MustDo(t, http.MethodPost, evPath, map[string]any{})
	evs, _ := e.JSON["events"].([]any)
	if len(evs) != 2 || field(evs[0], "sender") != string(bob.UserID) || field(evs[1], "content", "i") != float64(1) {
		t.Fatalf("events: %s", e.Body)
	}
	e2 := alice.MustDo(t, http.MethodPost, evPath, map[string]any{"next_batch": e.JSON["next_batch"]})
	if evs, _ := e2.JSON["events"].([]any); len(evs) != 0 || e2.JSON["next_batch"] == nil {
		t.Fatalf("last batch: %s", e2.Body)
	}
	if evs, _ := alice.MustDo(t, http.MethodPost, evPath, map[string]any{}).JSON["events"].([]any); len(evs) != 2 {
		t.Fatal("messages were deleted after delivery")
	}
	wantErr(t, alice.Do(t, http.MethodPost, dehydratedPath+"/"+string(alice.DeviceID)+"/events", map[string]any{}), 403, "M_FORBIDDEN")
	wantErr(t, bob.Do(t, http.MethodPost, evPath, map[string]any{}), 403, "M_FORBIDDEN")

	// A new dehydrated device replaces the old one, its keys and messages.
	alice.MustDo(t, http.MethodPut, dehydratedPath, dehydratedBody(t, alice, "DEHY2", "p2"))
	q = bob.MustDo(t, http.MethodPost, "keys/query", map[string]any{"device_keys": map[string]any{string(alice.UserID): []string{}}})
	if field(q.JSON, "device_keys", string(alice.UserID), "DEHY1") != nil || field(q.JSON, "device_keys", string(alice.UserID), "DEHY2") == nil {
		t.Fatalf("replace: %s", q.Body)
	}
	wantErr(t, alice.Do(t, http.MethodPost, evPath, map[string]any{}), 403, "M_FORBIDDEN")
	if d := alice.MustDo(t, http.MethodDelete, dehydratedPath, nil); d.JSON["device_id"] != "DEHY2" {
		t.Fatalf("delete: %s", d.Body)
	}
	wantErr(t, alice.Do(t, http.MethodGet, dehydratedPath, nil), 404, "M_NOT_FOUND")
	if v := srv.Anon().MustDo(t, http.MethodGet, "/_matrix/client/versions", nil); field(v.JSON, "unstable_features", "org.matrix.msc3814") != true {
		t.Fatalf("versions: %s", v.Body)
	}
}

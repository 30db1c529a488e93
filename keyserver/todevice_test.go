package keyserver_test

import (
	"net/http"
	"testing"
	"time"

	"parley/internal/testserver"
)

func toDeviceEvents(t *testing.T, res *testserver.Response) []map[string]any {
	t.Helper()
	l, _ := field(res.JSON, "to_device", "events").([]any)
	out := make([]map[string]any, 0, len(l))
	for _, e := range l {
		out = append(out, e.(map[string]any))
	}
	return out
}

// TestToDeviceRedeliveryAfterRestart: a message stays until the device syncs
// with a token at or past it, survives a restart, and is never delivered
// again once acknowledged.
func TestToDeviceRedeliveryAfterRestart(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	bobPhone := login(t, srv, bob.UserID, "PHONE")

	t0 := doSync(t, bob, "").JSON["next_batch"].(string)
	body := map[string]any{"messages": map[string]any{string(bob.UserID): map[string]any{string(bob.DeviceID): map[string]any{"n": 1}}}}
	alice.MustDo(t, http.MethodPut, "sendToDevice/m.test/txn1", body)
	// The same transaction again is not stored twice.
	alice.MustDo(t, http.MethodPut, "sendToDevice/m.test/txn1", body)
	// "*" reaches every device of Bob.
	alice.MustDo(t, http.MethodPut, "sendToDevice/m.test/txn2", map[string]any{"messages": map[string]any{string(bob.UserID): map[string]any{"*": map[string]any{"n": 2}}}})

	s1 := doSync(t, bob, t0)
	evs := toDeviceEvents(t, s1)
	if len(evs) != 2 || evs[0]["sender"] != string(alice.UserID) || evs[0]["type"] != "m.test" || field(evs[0], "content", "n") != float64(1) || field(evs[1], "content", "n") != float64(2) {
		t.Fatalf("first delivery: %s", s1.Body)
	}
	if evs := toDeviceEvents(t, doSync(t, bobPhone, "")); len(evs) != 1 || field(evs[0], "content", "n") != float64(2) {
		t.Fatalf("phone got %v", evs)
	}
	// Not acknowledged yet: the same since delivers them again.
	if evs := toDeviceEvents(t, doSync(t, bob, t0)); len(evs) != 2 {
		t.Fatalf("redelivery before ack: %v", evs)
	}

	// Restart on the same database.
	cfg := srv.Cfg
	srv.Close()
	srv2 := testserver.Start(t, cfg)
	bob.S = srv2
	if evs := toDeviceEvents(t, doSync(t, bob, t0)); len(evs) != 2 {
		t.Fatalf("lost after restart: %v", evs)
	}
	t1 := s1.JSON["next_batch"].(string)
	s2 := doSync(t, bob, t1) // acknowledges both
	if evs := toDeviceEvents(t, s2); len(evs) != 0 {
		t.Fatalf("delivered again after ack: %v", evs)
	}
	// Even an old token or an initial sync cannot bring them back: they are deleted.
	if evs := toDeviceEvents(t, doSync(t, bob, t0)); len(evs) != 0 {
		t.Fatalf("old token after ack: %v", evs)
	}
	if evs := toDeviceEvents(t, doSync(t, bob, "")); len(evs) != 0 {
		t.Fatalf("initial sync after ack: %v", evs)
	}

	alice.S = srv2
	wantErr(t, alice.Do(t, http.MethodPut, "sendToDevice/m.test/txn3", map[string]any{}), 400, "M_MISSING_PARAM")
	wantErr(t, alice.Do(t, http.MethodPut, "sendToDevice/m.test/txn4", map[string]any{"messages": map[string]any{"bad": map[string]any{}}}), 400, "M_INVALID_PARAM")
	wantErr(t, alice.Do(t, http.MethodPut, "sendToDevice/m.test/txn5", map[string]any{"messages": map[string]any{string(bob.UserID): map[string]any{"X": 3}}}), 400, "M_BAD_JSON")
}

// TestToDeviceWakesSync: a long-polling sync returns when a message arrives.
func TestToDeviceWakesSync(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	since := doSync(t, bob, "").JSON["next_batch"].(string)
	done := make(chan *testserver.Response, 1)
	go func() { done <- bob.Do(t, http.MethodGet, "sync?timeout=20000&since="+since, nil) }()
	alice.MustDo(t, http.MethodPut, "sendToDevice/m.test/t", map[string]any{"messages": map[string]any{string(bob.UserID): map[string]any{string(bob.DeviceID): map[string]any{}}}})
	res := <-done
	if len(toDeviceEvents(t, res)) != 1 {
		t.Fatalf("woken sync: %s", res.Body)
	}
}

// TestOwnDeviceListChanges: a user's other devices hear about its new keys,
// in sync and in /keys/changes.
func TestOwnDeviceListChanges(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	since := doSync(t, alice, "").JSON["next_batch"].(string)
	phone := login(t, srv, alice.UserID, "PHONE")
	uploadDeviceKeys(t, phone)
	s := doSync(t, alice, since)
	if !contains(strList(field(s.JSON, "device_lists", "changed")), string(alice.UserID)) {
		t.Fatalf("own change missing: %s", s.Body)
	}
	next := s.JSON["next_batch"].(string)
	ch := alice.MustDo(t, http.MethodGet, "keys/changes?from="+since+"&to="+next, nil)
	if !contains(strList(ch.JSON["changed"]), string(alice.UserID)) || ch.JSON["left"] == nil {
		t.Fatalf("keys/changes: %s", ch.Body)
	}
	ch = alice.MustDo(t, http.MethodGet, "keys/changes?from="+next+"&to="+next, nil)
	if len(strList(ch.JSON["changed"])) != 0 {
		t.Fatalf("empty range: %s", ch.Body)
	}
	// Renaming a device changes what /keys/query shows: a device-list change.
	alice.MustDo(t, http.MethodPut, "devices/PHONE", map[string]any{"display_name": "Phone"})
	if s := doSync(t, alice, next); !contains(strList(field(s.JSON, "device_lists", "changed")), string(alice.UserID)) {
		t.Fatalf("rename not in changed: %s", s.Body)
	}
	wantErr(t, alice.Do(t, http.MethodGet, "keys/changes?from=x&to="+next, nil), 400, "M_INVALID_PARAM")
	wantErr(t, alice.Do(t, http.MethodGet, "keys/changes?to="+next, nil), 400, "M_MISSING_PARAM")
}

// TestDeviceListsWithRooms: joining, key uploads and leaving show up in the
// other member's device_lists over real rooms.
func TestDeviceListsWithRooms(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)
	since := doSync(t, alice, "").JSON["next_batch"].(string)
	carolSince := doSync(t, carol, "").JSON["next_batch"].(string)

	bob.MustDo(t, http.MethodPost, "join/"+testserver.PathEscape(room), map[string]any{})
	s := doSync(t, alice, since)
	if !contains(strList(field(s.JSON, "device_lists", "changed")), string(bob.UserID)) {
		t.Fatalf("join not in changed: %s", field(s.JSON, "device_lists"))
	}
	since = s.JSON["next_batch"].(string)

	uploadDeviceKeys(t, bob)
	s = doSync(t, alice, since)
	if !contains(strList(field(s.JSON, "device_lists", "changed")), string(bob.UserID)) {
		t.Fatalf("key upload not in changed: %s", s.Body)
	}
	since = s.JSON["next_batch"].(string)
	if c := doSync(t, carol, carolSince); contains(strList(field(c.JSON, "device_lists", "changed")), string(bob.UserID)) {
		t.Fatalf("carol shares no room with bob but was told: %s", c.Body)
	}

	// Deleting a device wakes a long-polling sync of a room-mate at once.
	login(t, srv, alice.UserID, "PHONE")
	bobSince := doSync(t, bob, "").JSON["next_batch"].(string)
	bobSince = doSync(t, bob, bobSince).JSON["next_batch"].(string)
	done := make(chan *testserver.Response, 1)
	start := time.Now()
	go func() { done <- bob.Do(t, http.MethodGet, "sync?timeout=20000&since="+bobSince, nil) }()
	time.Sleep(100 * time.Millisecond)
	alice.MustDo(t, http.MethodPost, "delete_devices", map[string]any{"devices": []string{"PHONE"},
		"auth": map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "password"}})
	woken := <-done
	if time.Since(start) > 10*time.Second || !contains(strList(field(woken.JSON, "device_lists", "changed")), string(alice.UserID)) {
		t.Fatalf("device deletion did not wake bob (%v): %s", time.Since(start), woken.Body)
	}
	since = doSync(t, alice, since).JSON["next_batch"].(string)

	bob.MustDo(t, http.MethodPost, "rooms/"+testserver.PathEscape(room)+"/leave", map[string]any{})
	s = doSync(t, alice, since)
	if !contains(strList(field(s.JSON, "device_lists", "left")), string(bob.UserID)) {
		t.Fatalf("leave not in left: %s", field(s.JSON, "device_lists"))
	}
	next := s.JSON["next_batch"].(string)
	ch := alice.MustDo(t, http.MethodGet, "keys/changes?from="+since+"&to="+next, nil)
	if !contains(strList(ch.JSON["left"]), string(bob.UserID)) {
		t.Fatalf("keys/changes left: %s", ch.Body)
	}
}

package syncapi_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"parley/internal/testserver"
)

// extOf decodes one extension of a response.
func extOf(t *testing.T, r *ssResp, name string) map[string]json.RawMessage {
	t.Helper()
	raw, ok := r.Extensions[name]
	if !ok {
		t.Fatalf("extension %s missing: %v", name, r.Extensions)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("extension %s: %v", name, err)
	}
	return m
}

// extRooms decodes the "rooms" map of the receipts/typing extension.
func extRooms(t *testing.T, r *ssResp, name string) map[string]ssEvent {
	t.Helper()
	var rooms map[string]ssEvent
	if err := json.Unmarshal(extOf(t, r, name)["rooms"], &rooms); err != nil {
		t.Fatal(err)
	}
	return rooms
}

type accountDataExt struct {
	Global []ssEvent            `json:"global"`
	Rooms  map[string][]ssEvent `json:"rooms"`
}

func accountDataOf(t *testing.T, r *ssResp) accountDataExt {
	t.Helper()
	var ad accountDataExt
	raw, _ := json.Marshal(extOf(t, r, "account_data"))
	if err := json.Unmarshal(raw, &ad); err != nil {
		t.Fatal(err)
	}
	return ad
}

func types(evs []ssEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	slices.Sort(out)
	return out
}

// TestSlidingSyncExtensions checks that account data, receipts, typing,
// to-device and e2ee each deliver their data once.
func TestSlidingSyncExtensions(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	ev := send(t, bob, room, "hello")
	on := map[string]any{"enabled": true}
	body := map[string]any{
		"lists": map[string]any{"all": map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 1, "required_state": [][]string{}}},
		"extensions": map[string]any{"account_data": on, "receipts": on, "typing": on, "e2ee": on,
			"to_device": map[string]any{"enabled": true}},
	}
	first := slide(t, alice, "", 0, body)
	// Bob's message notifies alice (one-to-one room rule).
	if r := first.Rooms[room]; r == nil || *r.NotificationCount != 1 || *r.HighlightCount != 0 {
		t.Fatalf("unread counts: %+v", first.Rooms[room])
	}
	if ad := accountDataOf(t, first); !slices.Contains(types(ad.Global), "m.push_rules") {
		t.Fatalf("first response lacks push rules: %+v", ad)
	}
	e2ee := extOf(t, first, "e2ee")
	for _, k := range []string{"device_lists", "device_one_time_keys_count", "device_unused_fallback_key_types"} {
		if _, ok := e2ee[k]; !ok {
			t.Fatalf("e2ee lacks %s: %v", k, e2ee)
		}
	}
	var td struct {
		NextBatch string            `json:"next_batch"`
		Events    []json.RawMessage `json:"events"`
	}
	raw, _ := json.Marshal(extOf(t, first, "to_device"))
	if err := json.Unmarshal(raw, &td); err != nil || td.NextBatch == "" || td.Events == nil {
		t.Fatalf("to_device: %s", raw)
	}

	// Account data, global and per room: woken, then delivered once.
	done := make(chan *ssResp, 1)
	go func() { done <- slide(t, alice, first.Pos, 10000, body) }()
	time.Sleep(100 * time.Millisecond)
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("user/%s/account_data/com.example.global", alice.UserID), map[string]any{"a": 1})
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("user/%s/rooms/%s/account_data/com.example.room", alice.UserID, room), map[string]any{"b": 2})
	var got *ssResp
	select {
	case got = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("account data did not wake the long-poll")
	}
	// The two writes may land in one response or two.
	ad := accountDataOf(t, got)
	pos := got.Pos
	if len(ad.Rooms[room]) == 0 {
		more := slide(t, alice, pos, 0, body)
		ad2 := accountDataOf(t, more)
		ad.Global = append(ad.Global, ad2.Global...)
		ad.Rooms = ad2.Rooms
		pos = more.Pos
	}
	if !slices.Equal(types(ad.Global), []string{"com.example.global"}) || !slices.Equal(types(ad.Rooms[room]), []string{"com.example.room"}) {
		t.Fatalf("account data: %+v", ad)
	}
	again := slide(t, alice, pos, 0, body)
	if ad := accountDataOf(t, again); len(ad.Global) != 0 || len(ad.Rooms) != 0 {
		t.Fatalf("account data repeated: %+v", ad)
	}

	// Typing.
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/typing/%s", room, bob.UserID), map[string]any{"typing": true, "timeout": 30000})
	typing := slide(t, alice, again.Pos, 0, body)
	tr := extRooms(t, typing, "typing")[room]
	if ids, _ := tr.content()["user_ids"].([]any); tr.Type != "m.typing" || len(ids) != 1 || ids[0] != string(bob.UserID) {
		t.Fatalf("typing: %+v", tr)
	}
	if r := extRooms(t, slide(t, alice, typing.Pos, 0, body), "typing"); len(r) != 0 {
		t.Fatalf("typing repeated: %v", r)
	}

	// Receipts.
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/receipt/m.read/%s", room, ev), map[string]any{})
	rec := slide(t, alice, typing.Pos, 0, body)
	rr := extRooms(t, rec, "receipts")[room]
	if rr.Type != "m.receipt" || rr.content()[ev] == nil {
		t.Fatalf("receipts: %+v", rr)
	}
	after := slide(t, alice, rec.Pos, 0, body)
	if r := extRooms(t, after, "receipts"); len(r) != 0 {
		t.Fatalf("receipt repeated: %v", r)
	}

	// Scoping: an extension limited to no lists and no rooms sends no room data.
	scoped := map[string]any{
		"conn_id":    "scoped", // a second connection: the main one goes on below
		"lists":      body["lists"],
		"extensions": map[string]any{"typing": map[string]any{"enabled": true, "lists": []string{}, "rooms": []string{}}},
	}
	if r := extRooms(t, slide(t, alice, "", 0, scoped), "typing"); len(r) != 0 {
		t.Fatalf("typing outside the scope: %v", r)
	}

	// To-device: delivered once, then acknowledged by since.
	bob.MustDo(t, http.MethodPut, "sendToDevice/m.test/txn1", map[string]any{
		"messages": map[string]any{string(alice.UserID): map[string]any{string(alice.DeviceID): map[string]any{"x": 1}}}})
	body["extensions"].(map[string]any)["to_device"] = map[string]any{"enabled": true, "since": td.NextBatch}
	msg := slide(t, alice, after.Pos, 0, body)
	raw, _ = json.Marshal(extOf(t, msg, "to_device"))
	_ = json.Unmarshal(raw, &td)
	if len(td.Events) != 1 {
		t.Fatalf("to-device message not delivered: %s", raw)
	}
	body["extensions"].(map[string]any)["to_device"] = map[string]any{"enabled": true, "since": td.NextBatch}
	raw, _ = json.Marshal(extOf(t, slide(t, alice, msg.Pos, 0, body), "to_device"))
	_ = json.Unmarshal(raw, &td)
	if len(td.Events) != 0 {
		t.Fatalf("to-device message delivered twice: %s", raw)
	}
}

// TestSlidingSyncE2EEExtension checks the e2ee extension: one-time key
// counts, and a device list change when someone joins a shared room.
func TestSlidingSyncE2EEExtension(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	carol := srv.Register(t, "carol")
	alice.MustDo(t, http.MethodPost, "keys/upload", map[string]any{
		"one_time_keys": map[string]any{"signed_curve25519:AAAA": map[string]any{"key": "k1"}, "signed_curve25519:AAAB": map[string]any{"key": "k2"}}})
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	body := map[string]any{"extensions": map[string]any{"e2ee": map[string]any{"enabled": true}}}
	first := slide(t, alice, "", 0, body)
	var e2ee struct {
		DeviceLists struct {
			Changed []string `json:"changed"`
			Left    []string `json:"left"`
		} `json:"device_lists"`
		Counts   map[string]int `json:"device_one_time_keys_count"`
		Fallback []string       `json:"device_unused_fallback_key_types"`
	}
	decode := func(r *ssResp) {
		t.Helper()
		raw, _ := json.Marshal(extOf(t, r, "e2ee"))
		e2ee.DeviceLists.Changed = nil
		if err := json.Unmarshal(raw, &e2ee); err != nil {
			t.Fatal(err)
		}
	}
	decode(first)
	if e2ee.Counts["signed_curve25519"] != 2 || e2ee.Fallback == nil {
		t.Fatalf("key counts: %+v", e2ee)
	}
	done := make(chan *ssResp, 1)
	go func() { done <- slide(t, alice, first.Pos, 10000, body) }()
	time.Sleep(100 * time.Millisecond)
	carol.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	var got *ssResp
	select {
	case got = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("join did not wake the long-poll")
	}
	decode(got)
	if !slices.Contains(e2ee.DeviceLists.Changed, string(carol.UserID)) {
		// The device list change may come in the response after the room's.
		got = slide(t, alice, got.Pos, 2000, body)
		decode(got)
	}
	if !slices.Contains(e2ee.DeviceLists.Changed, string(carol.UserID)) {
		t.Fatalf("device_lists.changed lacks carol: %+v", e2ee.DeviceLists)
	}
	decode(slide(t, alice, got.Pos, 0, body))
	if len(e2ee.DeviceLists.Changed) != 0 || e2ee.Counts["signed_curve25519"] != 2 {
		t.Fatalf("device list change repeated, or counts lost: %+v", e2ee)
	}
}

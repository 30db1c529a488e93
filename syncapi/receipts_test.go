package syncapi_test

import (
	"net/http"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
)

// receiptsIn returns event → type → user → info from the m.receipt events of room.
func receiptsIn(s *syncResp, room id.RoomID) map[string]map[string]map[string]any {
	out := map[string]map[string]map[string]any{}
	for _, e := range findType(s.Rooms.Join[room].Ephemeral.Events, "m.receipt") {
		for ev, types := range e.content() {
			for typ, users := range types.(map[string]any) {
				if out[ev] == nil {
					out[ev] = map[string]map[string]any{}
				}
				if out[ev][typ] == nil {
					out[ev][typ] = map[string]any{}
				}
				for u, info := range users.(map[string]any) {
					out[ev][typ][u] = info
				}
			}
		}
	}
	return out
}

func TestReceipts(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := id.RoomID("!room:hs1.test")
	srv.HS.Membership.SetJoined(room, alice.UserID, true)
	srv.HS.Membership.SetJoined(room, bob.UserID, true)
	rcpt := func(typ, ev string) string { return testserver.Sprintf("rooms/%s/receipt/%s/%s", room, typ, ev) }

	wantErr(t, alice.Do(t, http.MethodPost, rcpt("m.bogus", "$e1"), map[string]any{}), 400, "M_BAD_JSON")
	wantErr(t, alice.Do(t, http.MethodPost, rcpt("m.read", "$e1"), map[string]any{"thread_id": ""}), 400, "M_BAD_JSON")
	wantErr(t, alice.Do(t, http.MethodPost, rcpt("m.read", "$e1"), map[string]any{"thread_id": 5}), 400, "M_BAD_JSON")
	wantErr(t, alice.Do(t, http.MethodPost, rcpt("m.fully_read", "$e1"), map[string]any{"thread_id": "main"}), 400, "M_BAD_JSON")
	wantErr(t, carol.Do(t, http.MethodPost, rcpt("m.read", "$e1"), map[string]any{}), 403, "M_FORBIDDEN")

	b0 := inboxSync(t, bob, nil)
	a0 := inboxSync(t, alice, nil)
	alice.MustDo(t, http.MethodPost, rcpt("m.read", "$e1"), map[string]any{})
	alice.MustDo(t, http.MethodPost, rcpt("m.read.private", "$e2"), map[string]any{})
	alice.MustDo(t, http.MethodPost, rcpt("m.read", "$t1"), map[string]any{"thread_id": "$root"})

	b1 := inboxSync(t, bob, since(b0.NextBatch))
	got := receiptsIn(b1, room)
	if got["$e1"]["m.read"][string(alice.UserID)] == nil {
		t.Fatalf("bob does not see alice's m.read: %s", b1.raw)
	}
	if got["$e2"] != nil {
		t.Fatalf("bob sees alice's private receipt: %s", b1.raw)
	}
	if info := got["$t1"]["m.read"][string(alice.UserID)].(map[string]any); info["thread_id"] != "$root" || info["ts"] == nil {
		t.Fatalf("threaded receipt: %s", b1.raw)
	}
	a1 := inboxSync(t, alice, since(a0.NextBatch))
	if receiptsIn(a1, room)["$e2"]["m.read.private"][string(alice.UserID)] == nil {
		t.Fatalf("alice does not see her private receipt: %s", a1.raw)
	}
	// Nothing new: the receipts are not repeated.
	if b2 := inboxSync(t, bob, since(b1.NextBatch)); len(receiptsIn(b2, room)) != 0 {
		t.Fatalf("receipts repeated: %s", b2.raw)
	}
	// Initial sync carries the current receipts.
	if got := receiptsIn(inboxSync(t, bob, nil), room); got["$e1"] == nil || got["$e2"] != nil {
		t.Fatal("initial sync receipts wrong")
	}

	// Read markers: m.fully_read goes to room account data, m.read is a receipt.
	markers := testserver.Sprintf("rooms/%s/read_markers", room)
	wantErr(t, alice.Do(t, http.MethodPost, markers, map[string]any{"m.fully_read": "nope"}), 400, "M_BAD_JSON")
	alice.MustDo(t, http.MethodPost, markers, map[string]any{"m.fully_read": "$e3", "m.read": "$e3"})
	fr := alice.MustDo(t, http.MethodGet, testserver.Sprintf("user/%s/rooms/%s/account_data/m.fully_read", alice.UserID, room), nil)
	if fr.JSON["event_id"] != "$e3" {
		t.Fatalf("m.fully_read: %s", fr.Body)
	}
	alice.MustDo(t, http.MethodPost, rcpt("m.fully_read", "$e4"), map[string]any{})
	a2 := inboxSync(t, alice, since(a1.NextBatch))
	if evs := findType(a2.Rooms.Join[room].AccountData.Events, "m.fully_read"); len(evs) != 1 || evs[0].content()["event_id"] != "$e4" {
		t.Fatalf("m.fully_read not in sync: %s", a2.raw)
	}
	if got := receiptsIn(a2, room); got["$e3"]["m.read"] == nil || got["$e4"] != nil {
		t.Fatalf("read marker receipts: %s", a2.raw)
	}
}

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
	room := newRoom(t, alice, bob)
	e := map[string]string{}
	for _, name := range []string{"$e1", "$e2", "$root", "$e3", "$e4"} {
		e[name] = sendMsg(t, bob, room, text(name))
	}
	e["$t1"] = sendMsg(t, bob, room, map[string]any{"msgtype": "m.text", "body": "t1",
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": e["$root"]}})
	rcpt := func(typ, ev string) string { return testserver.Sprintf("rooms/%s/receipt/%s/%s", room, typ, ev) }

	wantErr(t, alice.Do(t, http.MethodPost, rcpt("m.bogus", "$e1"), map[string]any{}), 400, "M_BAD_JSON")
	wantErr(t, alice.Do(t, http.MethodPost, rcpt("m.read", "$e1"), map[string]any{"thread_id": ""}), 400, "M_BAD_JSON")
	wantErr(t, alice.Do(t, http.MethodPost, rcpt("m.read", "$e1"), map[string]any{"thread_id": 5}), 400, "M_BAD_JSON")
	wantErr(t, alice.Do(t, http.MethodPost, rcpt("m.fully_read", "$e1"), map[string]any{"thread_id": "main"}), 400, "M_BAD_JSON")
	wantErr(t, carol.Do(t, http.MethodPost, rcpt("m.read", e["$e1"]), map[string]any{}), 403, "M_FORBIDDEN")
	wantErr(t, alice.Do(t, http.MethodPost, rcpt("m.read", "$unknown"), map[string]any{}), 404, "M_NOT_FOUND")

	b0 := inboxSync(t, bob, nil)
	a0 := inboxSync(t, alice, nil)
	alice.MustDo(t, http.MethodPost, rcpt("m.read", e["$e1"]), map[string]any{})
	alice.MustDo(t, http.MethodPost, rcpt("m.read.private", e["$e2"]), map[string]any{})
	alice.MustDo(t, http.MethodPost, rcpt("m.read", e["$t1"]), map[string]any{"thread_id": e["$root"]})

	b1 := inboxSync(t, bob, since(b0.NextBatch))
	got := receiptsIn(b1, room)
	if got[e["$e1"]]["m.read"][string(alice.UserID)] == nil {
		t.Fatalf("bob does not see alice's m.read: %s", b1.raw)
	}
	if got[e["$e2"]] != nil {
		t.Fatalf("bob sees alice's private receipt: %s", b1.raw)
	}
	if info := got[e["$t1"]]["m.read"][string(alice.UserID)].(map[string]any); info["thread_id"] != e["$root"] || info["ts"] == nil {
		t.Fatalf("threaded receipt: %s", b1.raw)
	}
	a1 := inboxSync(t, alice, since(a0.NextBatch))
	if receiptsIn(a1, room)[e["$e2"]]["m.read.private"][string(alice.UserID)] == nil {
		t.Fatalf("alice does not see her private receipt: %s", a1.raw)
	}
	// Nothing new: the receipts are not repeated.
	if b2 := inboxSync(t, bob, since(b1.NextBatch)); len(receiptsIn(b2, room)) != 0 {
		t.Fatalf("receipts repeated: %s", b2.raw)
	}
	// Initial sync carries the current receipts.
	if got := receiptsIn(inboxSync(t, bob, nil), room); got[e["$e1"]] == nil || got[e["$e2"]] != nil {
		t.Fatal("initial sync receipts wrong")
	}

	// Read markers: m.fully_read goes to room account data, m.read is a receipt.
	markers := testserver.Sprintf("rooms/%s/read_markers", room)
	wantErr(t, alice.Do(t, http.MethodPost, markers, map[string]any{"m.fully_read": "nope"}), 400, "M_BAD_JSON")
	alice.MustDo(t, http.MethodPost, markers, map[string]any{"m.fully_read": e["$e3"], "m.read": e["$e3"]})
	fr := alice.MustDo(t, http.MethodGet, testserver.Sprintf("user/%s/rooms/%s/account_data/m.fully_read", alice.UserID, room), nil)
	if fr.JSON["event_id"] != e["$e3"] {
		t.Fatalf("m.fully_read: %s", fr.Body)
	}
	alice.MustDo(t, http.MethodPost, rcpt("m.fully_read", e["$e4"]), map[string]any{})
	a2 := inboxSync(t, alice, since(a1.NextBatch))
	if evs := findType(a2.Rooms.Join[room].AccountData.Events, "m.fully_read"); len(evs) != 1 || evs[0].content()["event_id"] != e["$e4"] {
		t.Fatalf("m.fully_read not in sync: %s", a2.raw)
	}
	if got := receiptsIn(a2, room); got[e["$e3"]]["m.read"] == nil || got[e["$e4"]] != nil {
		t.Fatalf("read marker receipts: %s", a2.raw)
	}
	// A receipt never moves backwards: an older event is ignored.
	alice.MustDo(t, http.MethodPost, rcpt("m.read", e["$e1"]), map[string]any{})
	if got := receiptsIn(inboxSync(t, bob, nil), room); got[e["$e3"]]["m.read"][string(alice.UserID)] == nil || got[e["$e1"]] != nil {
		t.Fatalf("receipt moved backwards: %v", got)
	}
}

// TestReceiptUnthreadedWinsClash: a user's unthreaded and threaded read
// receipts at the same event cannot both fit in m.receipt; the unthreaded one
// is sent (MSC4102), in an initial and in an incremental sync.
func TestReceiptUnthreadedWinsClash(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := newRoom(t, alice, bob)
	root := sendMsg(t, alice, room, text("root"))
	reply := sendMsg(t, alice, room, map[string]any{"msgtype": "m.text", "body": "in thread",
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}})
	b0 := inboxSync(t, bob, nil)
	rcpt := testserver.Sprintf("rooms/%s/receipt/m.read/%s", room, reply)
	alice.MustDo(t, http.MethodPost, rcpt, map[string]any{})
	alice.MustDo(t, http.MethodPost, rcpt, map[string]any{"thread_id": root})
	for name, s := range map[string]*syncResp{"incremental": inboxSync(t, bob, since(b0.NextBatch)), "initial": inboxSync(t, bob, nil)} {
		info, _ := receiptsIn(s, room)[reply]["m.read"][string(alice.UserID)].(map[string]any)
		if info == nil {
			t.Fatalf("%s: no receipt: %s", name, s.raw)
		}
		if _, threaded := info["thread_id"]; threaded {
			t.Fatalf("%s: threaded receipt won the clash: %s", name, s.raw)
		}
	}
}

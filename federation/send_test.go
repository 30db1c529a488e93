package federation_test

import (
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"parley/internal/config"
	"parley/internal/signing"
	"parley/internal/testserver"
)

// roomFixture is a room on hs1 that bob@hs2 has joined.
type roomFixture struct {
	hs1, hs2 *testserver.Server
	alice    *testserver.Client
	bob      *testserver.Client
	room     id.RoomID
}

func joinedPair(t testing.TB) *roomFixture {
	t.Helper()
	s := testserver.NewFederation(t, []string{"hs1.test", "hs2.test"})
	f := &roomFixture{hs1: s[0], hs2: s[1]}
	f.alice = f.hs1.Register(t, "alice")
	f.bob = f.hs2.Register(t, "bob")
	f.room = id.RoomID(f.alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string))
	f.bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(f.room))+"?server_name=hs1.test", map[string]any{})
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev, err := f.hs1.HS.Store.CurrentStateEvent(context.Background(), f.room, "m.room.member", string(f.bob.UserID))
		if err == nil && ev.Membership == "join" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob's join did not reach hs1")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return f
}

// build makes a message event by sender on top of hs1's current room state,
// signed with key as server hs2.test.
func (f *roomFixture) build(t testing.TB, sender id.UserID, key *mfed.SigningKey, body string, prev []id.EventID, depth int64) (*pdu.PDU, id.EventID) {
	t.Helper()
	return f.buildPDU(t, key, sender, "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": body}, prev, depth)
}

// buildPDU makes an event by sender (stateKey nil: not a state event) with
// the auth events its type needs from hs1's current state of f.room, signed
// as hs2.test with key (hs2's own when nil). With prev nil it goes on hs1's
// forward extremities, one deeper than the deepest of them.
func (f *roomFixture) buildPDU(t testing.TB, key *mfed.SigningKey, sender id.UserID, evType string, stateKey *string, content any, prev []id.EventID, depth int64) (*pdu.PDU, id.EventID) {
	t.Helper()
	ctx := context.Background()
	if key == nil {
		key = f.hs2.HS.SigningKey
	}
	if prev == nil {
		var err error
		if prev, err = f.hs1.HS.Store.ForwardExtremities(ctx, f.room); err != nil {
			t.Fatal(err)
		}
		evs, _ := f.hs1.HS.Store.GetEvents(ctx, prev)
		for _, e := range evs {
			depth = max(depth, e.Depth+1)
		}
	}
	c, err := json.Marshal(content)
	if err != nil {
		t.Fatal(err)
	}
	p := &pdu.PDU{RoomID: f.room, Sender: sender, Type: evType, StateKey: stateKey, Content: jsontext.Value(c),
		OriginServerTS: time.Now().UnixMilli(), PrevEvents: prev, AuthEvents: []id.EventID{}, Depth: depth}
	for _, k := range p.AuthEventSelection("11") {
		if ev, err := f.hs1.HS.Store.CurrentStateEvent(ctx, f.room, k.Type, k.StateKey); err == nil {
			p.AuthEvents = append(p.AuthEvents, ev.EventID)
		}
	}
	if err := p.Sign("11", "hs2.test", key.ID, key.Priv); err != nil {
		t.Fatal(err)
	}
	evID, err := p.GetEventID("11")
	if err != nil {
		t.Fatal(err)
	}
	return p, evID
}

func raw(t testing.TB, p *pdu.PDU) json.RawMessage {
	b, err := jsonv2.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func txn(origin string, pdus ...json.RawMessage) map[string]any {
	if pdus == nil {
		pdus = []json.RawMessage{}
	}
	return map[string]any{"origin": origin, "origin_server_ts": time.Now().UnixMilli(), "pdus": pdus}
}

// sendRaw PUTs a transaction body signed by hs2.
func (f *roomFixture) sendRaw(t *testing.T, txnID string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	uri := "/_matrix/federation/v1/send/" + txnID
	return rawFed(t, f.hs1, "PUT", uri, xMatrix(t, f.hs2.HS.SigningKey, "PUT", uri, "hs2.test", "hs1.test", b), b)
}

func (f *roomFixture) stored(evID id.EventID) bool {
	_, err := f.hs1.HS.Store.GetEvent(context.Background(), evID)
	return err == nil
}

func TestInboundTransactionChecks(t *testing.T) {
	f := joinedPair(t)
	ctx := context.Background()
	key := f.hs2.HS.SigningKey

	// A valid event is accepted, and the same txn ID again gives the same answer without a second input.
	good, goodID := f.build(t, f.bob.UserID, key, "good", nil, 0)
	status, body := f.sendRaw(t, "t1", txn("hs2.test", raw(t, good)))
	if status != 200 || fmt.Sprint(body["pdus"]) != fmt.Sprintf("map[%s:map[]]", goodID) {
		t.Fatalf("good txn: %d %v", status, body)
	}
	status2, body2 := f.sendRaw(t, "t1", txn("hs2.test"))
	if status2 != 200 || fmt.Sprint(body2) != fmt.Sprint(body) {
		t.Fatalf("replayed txn: %d %v", status2, body2)
	}
	if !hasBody(timelineBodies(t, f.alice, f.room), "good") {
		t.Fatal("accepted event not in alice's /sync")
	}

	before, _ := f.hs1.HS.Store.MaxStreamPos(ctx)
	// Rejections of the whole transaction: nothing is stored.
	many := make([]json.RawMessage, 51)
	for i := range many {
		p, _ := f.build(t, f.bob.UserID, key, fmt.Sprintf("many %d", i), nil, 0)
		many[i] = raw(t, p)
	}
	edus := make([]map[string]any, 101)
	for i := range edus {
		edus[i] = map[string]any{"edu_type": "m.typing", "content": map[string]any{}}
	}
	tooManyEDUs := txn("hs2.test")
	tooManyEDUs["edus"] = edus
	cases := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"51 pdus", txn("hs2.test", many...), 400, "M_BAD_JSON"},
		{"101 edus", tooManyEDUs, 400, "M_BAD_JSON"},
		{"origin mismatch", txn("hs3.test", many[0]), 400, "M_BAD_JSON"},
		{"pdus missing", map[string]any{"origin": "hs2.test", "origin_server_ts": 1}, 400, "M_BAD_JSON"},
		{"pdus not an array", map[string]any{"origin": "hs2.test", "origin_server_ts": 1, "pdus": "x"}, 400, "M_BAD_JSON"},
		{"pdu not an object", map[string]any{"origin": "hs2.test", "origin_server_ts": 1, "pdus": []any{1}}, 400, "M_BAD_JSON"},
		{"not json", json.RawMessage(`{`), 400, "M_NOT_JSON"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var st int
			var b map[string]any
			if r, ok := tc.body.(json.RawMessage); ok && string(r) == "{" {
				uri := fmt.Sprintf("/_matrix/federation/v1/send/bad%d", i)
				st, b = rawFed(t, f.hs1, "PUT", uri, xMatrix(t, key, "PUT", uri, "hs2.test", "hs1.test", nil), []byte("{"))
			} else {
				st, b = f.sendRaw(t, fmt.Sprintf("bad%d", i), tc.body)
			}
			if st != tc.status || b["errcode"] != tc.code {
				t.Fatalf("got %d %v", st, b)
			}
		})
	}
	// Oversize body: beyond listen.max_request_bytes.
	big := txn("hs2.test", json.RawMessage(`{"pad":"`+strings.Repeat("x", 2<<20)+`"}`))
	if st, b := f.sendRaw(t, "big", big); st != 413 {
		t.Fatalf("oversize: %d %v", st, b)
	}
	if after, _ := f.hs1.HS.Store.MaxStreamPos(ctx); after != before {
		t.Fatalf("rejected transactions changed the room: stream %d -> %d", before, after)
	}

	// Per-PDU checks: an event that cannot be processed (bad signature)
	// gets an error; one that fails the auth rules is processed (empty
	// result, as Synapse answers) and stored as rejected. None reaches the timeline.
	forger := signing.Generate()
	forger.ID = key.ID
	forged, forgedID := f.build(t, f.bob.UserID, forger, "forged", nil, 0)
	outsider, outsiderID := f.build(t, "@mallory:hs2.test", key, "outsider", nil, 0)
	tampered, tamperedID := f.build(t, f.bob.UserID, key, "tampered", nil, 0)
	tampered.Content = jsontext.Value(`{"msgtype":"m.text","body":"changed in transit"}`)
	status, body = f.sendRaw(t, "t2", txn("hs2.test", raw(t, forged), raw(t, outsider), raw(t, tampered)))
	if status != 200 {
		t.Fatalf("t2: %d %v", status, body)
	}
	results := body["pdus"].(map[string]any)
	if r, _ := results[string(forgedID)].(map[string]any); r["error"] == nil {
		t.Errorf("forged event accepted: %v", results)
	}
	if r, ok := results[string(outsiderID)].(map[string]any); !ok || len(r) != 0 {
		t.Errorf("rejected event's result: %v", results)
	}
	if ev, err := f.hs1.HS.Store.GetEvent(ctx, outsiderID); err != nil || !ev.Rejected {
		t.Errorf("event of a non-member not stored as rejected: %+v %v", ev, err)
	}
	if f.stored(forgedID) {
		t.Error("event with a bad signature was stored")
	}
	bodies := timelineBodies(t, f.alice, f.room)
	for _, b := range []string{"forged", "outsider", "changed in transit"} {
		if hasBody(bodies, b) {
			t.Errorf("%q reached the timeline", b)
		}
	}
	// A content hash mismatch is not a rejection: the event is kept, redacted.
	ev, err := f.hs1.HS.Store.GetEvent(ctx, tamperedID)
	if err != nil {
		t.Fatalf("tampered event: %v", err)
	}
	var stored map[string]any
	_ = json.Unmarshal(ev.JSON, &stored)
	if c := stored["content"].(map[string]any); len(c) != 0 {
		t.Fatalf("tampered event not redacted: %s", ev.JSON)
	}
}

func TestGetMissingEventsFillsGaps(t *testing.T) {
	f := joinedPair(t)
	ctx := context.Background()
	// hs2 learns two new events of bob's while its sender is stopped, so hs1 never hears of the first.
	f.hs2.HS.Outbound.Close()
	e1, id1 := f.build(t, f.bob.UserID, f.hs2.HS.SigningKey, "gap 1", nil, 0)
	e2, id2 := f.build(t, f.bob.UserID, f.hs2.HS.SigningKey, "gap 2", []id.EventID{id1}, e1.Depth+1)
	for _, res := range f.hs2.HS.Rooms.InputRemoteEvents(ctx, "hs2.test", []jsontext.Value{jsontext.Value(raw(t, e1)), jsontext.Value(raw(t, e2))}) {
		if res.Err != nil {
			t.Fatalf("hs2 input %s: %v", res.EventID, res.Err)
		}
	}
	status, body := f.sendRaw(t, "gap", txn("hs2.test", raw(t, e2)))
	if status != 200 {
		t.Fatalf("send: %d %v", status, body)
	}
	if r := body["pdus"].(map[string]any)[string(id2)].(map[string]any); r["error"] != nil {
		t.Fatalf("e2 not accepted: %v", r)
	}
	if !f.stored(id1) {
		t.Fatal("hs1 did not fetch the missing prev event from hs2")
	}
	bodies := timelineBodies(t, f.alice, f.room)
	if !hasBody(bodies, "gap 1") || !hasBody(bodies, "gap 2") {
		t.Fatalf("timeline after gap fill: %v", bodies)
	}
}

func TestBackfillAndHistoryEndpoints(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	secret := createRoom(t, alice, map[string]any{"preset": "private_chat"})
	old := send(t, alice, room, "history before bob")
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(room))+"?server_name=hs1.test", map[string]any{})
	joinEv, err := hs2.HS.Store.CurrentStateEvent(context.Background(), room, "m.room.member", string(bob.UserID))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "join reaches hs1", func() bool { return membership(t, alice, room, bob.UserID) == "join" })
	c := fedClient(t, hs2)
	ctx := context.Background()
	bf, err := c.Backfill(ctx, &mfed.ReqBackfill{ServerName: "hs1.test", RoomID: room, Limit: 10, BackfillFrom: []id.EventID{joinEv.EventID}})
	if err != nil {
		t.Fatalf("backfill: %v", err)
	}
	found := false
	for _, p := range bf.PDUs {
		var ev pdu.PDU
		if err := jsonv2.Unmarshal(p, &ev); err != nil {
			t.Fatal(err)
		}
		if evID, _ := ev.GetEventID("11"); evID == old {
			found = true
			if !ev.VerifyContentHash() {
				t.Fatal("backfilled event hash")
			}
			if err := ev.VerifySignature("11", "hs1.test", hs2.HS.Keys.GetKey); err != nil {
				t.Fatalf("backfilled event signature: %v", err)
			}
		}
	}
	if !found || bf.Origin != "hs1.test" {
		t.Fatalf("backfill lacks the old message: %d pdus", len(bf.PDUs))
	}
	st, err := c.GetStateIDs(ctx, "hs1.test", room, old)
	if err != nil || len(st.PDUs) < 4 || len(st.AuthChain) == 0 {
		t.Fatalf("state_ids: %+v %v", st, err)
	}
	if ev, err := c.GetEvent(ctx, "hs1.test", old); err != nil || len(ev.PDUs) != 1 {
		t.Fatalf("event: %+v %v", ev, err)
	}
	if ac, err := c.GetEventAuthChain(ctx, "hs1.test", room, old); err != nil || len(ac.AuthChain) < 3 {
		t.Fatalf("event_auth: %+v %v", ac, err)
	}
	// hs2 has nobody in the private room: its history is refused.
	secretEv := send(t, alice, secret, "secret")
	if _, err := c.GetEvent(ctx, "hs1.test", secretEv); !isErr(err, 403, "M_FORBIDDEN") {
		t.Fatalf("event of a room hs2 is not in: %v", err)
	}
	if _, err := c.Backfill(ctx, &mfed.ReqBackfill{ServerName: "hs1.test", RoomID: secret, Limit: 10, BackfillFrom: []id.EventID{secretEv}}); !isErr(err, 403, "M_FORBIDDEN") {
		t.Fatalf("backfill of a room hs2 is not in: %v", err)
	}
}

func TestServerACLAndDenyList(t *testing.T) {
	f := joinedPair(t)
	room := url.PathEscape(string(f.room))
	f.alice.MustDo(t, http.MethodPut, "rooms/"+room+"/state/m.room.server_acl/", map[string]any{"allow": []string{"*"}, "deny": []string{"hs2.test"}})
	ev, evID := f.build(t, f.bob.UserID, f.hs2.HS.SigningKey, "denied", nil, 0)
	status, body := f.sendRaw(t, "acl", txn("hs2.test", raw(t, ev)))
	if status != 200 {
		t.Fatalf("send: %d %v", status, body)
	}
	if r := body["pdus"].(map[string]any)[string(evID)].(map[string]any); r["error"] == nil {
		t.Fatalf("event from an ACL-denied server accepted: %v", body)
	}
	if f.stored(evID) {
		t.Fatal("event from an ACL-denied server stored")
	}
	// Typing and receipts of the denied server in that room are dropped;
	// the same EDUs for a room without an ACL still arrive.
	open := createRoom(t, f.alice, map[string]any{"preset": "public_chat"})
	f.bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(open))+"?server_name=hs1.test", map[string]any{})
	eventually(t, "bob joined the open room", func() bool { return membership(t, f.alice, open, f.bob.UserID) == "join" })
	last := send(t, f.alice, f.room, "read me")
	lastOpen := send(t, f.alice, open, "read me too")
	edus := txn("hs2.test")
	var list []map[string]any
	for _, r := range []struct {
		room id.RoomID
		ev   id.EventID
	}{{f.room, last}, {open, lastOpen}} {
		list = append(list,
			map[string]any{"edu_type": "m.typing", "content": map[string]any{"room_id": r.room, "user_id": f.bob.UserID, "typing": true, "timeout": 30000}},
			map[string]any{"edu_type": "m.receipt", "content": map[string]any{string(r.room): map[string]any{"m.read": map[string]any{
				string(f.bob.UserID): map[string]any{"event_ids": []id.EventID{r.ev}, "data": map[string]any{"ts": 1}}}}}})
	}
	edus["edus"] = list
	if status, body := f.sendRaw(t, "acl-edus", edus); status != 200 {
		t.Fatalf("send EDUs: %d %v", status, body)
	}
	ephemeral := func(res *testserver.Response, room id.RoomID) []any {
		r, _ := res.JSON["rooms"].(map[string]any)["join"].(map[string]any)[string(room)].(map[string]any)
		if r == nil {
			return nil
		}
		evs, _ := r["ephemeral"].(map[string]any)["events"].([]any)
		return evs
	}
	res := f.alice.MustDo(t, http.MethodGet, "sync", nil)
	if evs := ephemeral(res, open); len(evs) != 2 {
		t.Fatalf("typing and receipt in the room without an ACL: %v", evs)
	}
	if evs := ephemeral(res, f.room); len(evs) != 0 {
		t.Fatalf("EDUs of an ACL-denied server reached the room: %v", evs)
	}
	uri := "/_matrix/federation/v1/make_join/" + room + "/" + url.PathEscape("@carol:hs2.test") + "?ver=11"
	if st, b := rawFed(t, f.hs1, "GET", uri, xMatrix(t, f.hs2.HS.SigningKey, "GET", uri, "hs2.test", "hs1.test", nil), nil); st != 403 || b["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("make_join from an ACL-denied server: %d %v", st, b)
	}
}

func TestDenyServersConfig(t *testing.T) {
	s := testserver.NewFederation(t, []string{"hs1.test", "hs2.test"}, func(c *config.Config) {
		if c.ServerName == "hs1.test" {
			c.Federation.DenyServers = []string{"hs2.test"}
		}
	})
	hs1, hs2 := s[0], s[1]
	hs1.Register(t, "alice")
	uri := "/_matrix/federation/v1/query/profile?user_id=@alice:hs1.test"
	if st, b := rawFed(t, hs1, "GET", uri, xMatrix(t, hs2.HS.SigningKey, "GET", uri, "hs2.test", "hs1.test", nil), nil); st != 403 || b["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("denied server: %d %v", st, b)
	}
}

func TestBackfillRespectsHistoryVisibility(t *testing.T) {
	hs1, hs2 := pair(t)
	alice := hs1.Register(t, "alice")
	bob := hs2.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat",
		"initial_state": []any{map[string]any{"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": "joined"}}}})
	hidden := send(t, alice, room, "before bob joined")
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(room))+"?server_name=hs1.test", map[string]any{})
	eventually(t, "join reaches hs1", func() bool { return membership(t, alice, room, bob.UserID) == "join" })
	seen := send(t, alice, room, "after bob joined")
	bf, err := fedClient(t, hs2).Backfill(context.Background(), &mfed.ReqBackfill{ServerName: "hs1.test", RoomID: room, Limit: 20, BackfillFrom: []id.EventID{seen}})
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[id.EventID]string{}
	for _, p := range bf.PDUs {
		var ev pdu.PDU
		if err := jsonv2.Unmarshal(p, &ev); err != nil {
			t.Fatal(err)
		}
		evID, _ := ev.GetEventID("11")
		var c map[string]any
		_ = json.Unmarshal(ev.Content, &c)
		b, _ := c["body"].(string)
		bodies[evID] = b
	}
	if b, ok := bodies[hidden]; !ok || b != "" {
		t.Fatalf("event from before the join: present %v, body %q (want redacted)", ok, b)
	}
	if bodies[seen] != "after bob joined" {
		t.Fatalf("event after the join: %q", bodies[seen])
	}
}

func TestTimestampToEvent(t *testing.T) {
	f := joinedPair(t)
	first := send(t, f.alice, f.room, "first")
	time.Sleep(20 * time.Millisecond)
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	second := send(t, f.alice, f.room, "second")
	c := fedClient(t, f.hs2)
	ctx := context.Background()
	if r, err := c.TimestampToEvent(ctx, "hs1.test", f.room, mid, mautrix.DirectionForward); err != nil || r.EventID != second {
		t.Fatalf("forward: %+v %v (want %s)", r, err, second)
	}
	if r, err := c.TimestampToEvent(ctx, "hs1.test", f.room, mid, mautrix.DirectionBackward); err != nil || r.EventID != first {
		t.Fatalf("backward: %+v %v (want %s)", r, err, first)
	}
	if _, err := c.TimestampToEvent(ctx, "hs1.test", f.room, time.Now().Add(time.Hour), mautrix.DirectionForward); !isErr(err, 404, "M_NOT_FOUND") {
		t.Fatalf("nothing after: %v", err)
	}
}

// Events of a user deactivated with erasure are served redacted to other servers.
func TestErasedUserEventsRedactedOverFederation(t *testing.T) {
	f := joinedPair(t)
	carol := f.hs1.Register(t, "carol")
	carol.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(f.room)), map[string]any{})
	msg := send(t, carol, f.room, "personal data")
	c := fedClient(t, f.hs2)
	ctx := context.Background()
	content := func() map[string]any {
		ev, err := c.GetEvent(ctx, "hs1.test", msg)
		if err != nil || len(ev.PDUs) != 1 {
			t.Fatalf("event: %+v %v", ev, err)
		}
		var p map[string]any
		if err := json.Unmarshal(ev.PDUs[0], &p); err != nil {
			t.Fatal(err)
		}
		return p["content"].(map[string]any)
	}
	if content()["body"] != "personal data" {
		t.Fatal("event before erasure")
	}
	ch := carol.Do(t, http.MethodPost, "account/deactivate", map[string]any{})
	auth := map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "carol"},
		"password": "password", "session": ch.JSON["session"]}
	carol.MustDo(t, http.MethodPost, "account/deactivate", map[string]any{"auth": auth, "erase": true})
	if c := content(); len(c) != 0 {
		t.Fatalf("event of an erased user served with content %v", c)
	}
}

package storagetest

import (
	"context"
	"fmt"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

func runRooms(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("RoomsEventsAndState", func(t *testing.T) { testRoomEvents(t, open(t)) })
	t.Run("RoomsStateSnapshots", func(t *testing.T) { testStateSnapshots(t, open(t)) })
	t.Run("RoomsAliasesAndForget", func(t *testing.T) { testAliases(t, open(t)) })
	t.Run("RoomsMoveDirectory", func(t *testing.T) { testMoveRoomDirectory(t, open(t)) })
	t.Run("RoomsBackfill", func(t *testing.T) { testBackfill(t, open(t)) })
}

const room = id.RoomID("!r:test")

// ev builds a NewEvent for the conformance tests; the storage layer does not
// interpret the PDU JSON beyond storing it.
func ev(n int, evType string, stateKey *string, sender id.UserID, prev ...id.EventID) *storage.NewEvent {
	e := &storage.NewEvent{
		Event: storage.Event{
			EventID: id.EventID(fmt.Sprintf("$e%d", n)), RoomID: room, Type: evType, StateKey: stateKey,
			Sender: sender, Depth: int64(n), OriginTS: int64(1000 + n),
			JSON: []byte(fmt.Sprintf(`{"type":%q,"content":{"n":%d}}`, evType, n)),
		},
		PrevEvents: prev, UpdateCurrentState: true,
	}
	if evType == "m.room.member" {
		e.Membership = "join"
	}
	return e
}

func sk(s string) *string { return &s }

func testRoomEvents(t *testing.T, s storage.Store) {
	ctx := context.Background()
	create := ev(1, "m.room.create", sk(""), alice)
	join := ev(2, "m.room.member", sk(string(alice)), alice, "$e1")
	msg := ev(3, "m.room.message", nil, alice, "$e2")
	msg.TxnID, msg.TxnScope, msg.DeviceID = "txn1", "send", "DEV"
	stored, err := s.StoreEvents(ctx, storage.StoreEventsRequest{RoomID: room,
		NewRoom: &storage.Room{RoomID: room, Version: "11", Creator: alice, CreatedTS: 1},
		Events:  []*storage.NewEvent{create, join, msg}})
	must(t, err)
	if !(stored[0].StreamPos < stored[1].StreamPos && stored[1].StreamPos < stored[2].StreamPos) {
		t.Fatalf("stream positions not increasing: %+v", stored)
	}
	if stored[0].StateBefore != 0 || stored[1].StateBefore != stored[0].StateAfter || stored[2].StateBefore != stored[2].StateAfter || stored[2].StateAfter != stored[1].StateAfter {
		t.Fatalf("state groups: %+v", stored)
	}
	ids, err := s.StateIDs(ctx, stored[2].StateAfter)
	must(t, err)
	if len(ids) != 2 || ids[storage.StateKeyTuple{Type: "m.room.member", StateKey: string(alice)}] != "$e2" {
		t.Fatalf("state ids %v", ids)
	}
	info, err := s.GetRoom(ctx, room)
	must(t, err)
	if info.Version != "11" || info.CurrentGroup != stored[2].StateAfter {
		t.Fatalf("room %+v", info)
	}
	ext, err := s.ForwardExtremities(ctx, room)
	must(t, err)
	if len(ext) != 1 || ext[0] != "$e3" {
		t.Fatalf("extremities %v", ext)
	}
	if e, err := s.EventByTxnID(ctx, alice, "DEV", "send", "txn1"); err != nil || e != "$e3" {
		t.Fatalf("txn lookup %s %v", e, err)
	}
	_, err = s.EventByTxnID(ctx, alice, "OTHER", "send", "txn1")
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.EventByTxnID(ctx, alice, "DEV", "other", "txn1")
	wantErr(t, err, storage.ErrNotFound)

	// A write built on stale extremities changes nothing.
	before, _ := s.MaxStreamPos(ctx)
	_, err = s.StoreEvents(ctx, storage.StoreEventsRequest{RoomID: room, ExpectExtremities: []id.EventID{"$e2"},
		Events: []*storage.NewEvent{ev(4, "m.room.message", nil, alice, "$e2")}})
	wantErr(t, err, storage.ErrStale)
	if after, _ := s.MaxStreamPos(ctx); after != before {
		t.Fatalf("stale write stored something: %d → %d", before, after)
	}
	// The same transaction ID again conflicts.
	dup := ev(4, "m.room.message", nil, alice, "$e3")
	dup.TxnID, dup.TxnScope, dup.DeviceID = "txn1", "send", "DEV"
	_, err = s.StoreEvents(ctx, storage.StoreEventsRequest{RoomID: room, Events: []*storage.NewEvent{dup}})
	wantErr(t, err, storage.ErrConflict)

	// Redaction replaces the stored JSON and unsigned.
	red := ev(5, "m.room.redaction", nil, alice, "$e3")
	red.Redacts, red.RedactedJSON, red.RedactedUnsigned = "$e3", []byte(`{"type":"m.room.message","content":{}}`), []byte(`{"redacted_because":{}}`)
	bob1 := ev(6, "m.room.member", sk(string(bob)), bob, "$e5")
	bob1.Membership = "invite"
	stored, err = s.StoreEvents(ctx, storage.StoreEventsRequest{RoomID: room, ExpectExtremities: []id.EventID{"$e3"}, Events: []*storage.NewEvent{red, bob1}})
	must(t, err)
	got, err := s.GetEvent(ctx, "$e3")
	must(t, err)
	if !got.Redacted || string(got.JSON) != `{"type":"m.room.message","content":{}}` || string(got.Unsigned) != `{"redacted_because":{}}` || got.TxnID != "txn1" {
		t.Fatalf("redacted event %+v", got)
	}

	evs, err := s.RoomEvents(ctx, room, 0, 1<<62, 2, true)
	must(t, err)
	if len(evs) != 2 || evs[0].EventID != "$e6" || evs[1].EventID != "$e5" {
		t.Fatalf("room events backwards: %v", evs)
	}
	last, err := s.LastEventAt(ctx, room, stored[0].StreamPos)
	must(t, err)
	if last.EventID != "$e5" {
		t.Fatalf("last event at: %s", last.EventID)
	}
	rooms, err := s.RoomsChangedBetween(ctx, stored[0].StreamPos-1, stored[1].StreamPos)
	must(t, err)
	if len(rooms) != 1 || rooms[0] != room {
		t.Fatalf("rooms changed: %v", rooms)
	}
	ms, err := s.UserMemberships(ctx, bob)
	must(t, err)
	if len(ms) != 1 || ms[0].Membership != "invite" || ms[0].EventID != "$e6" {
		t.Fatalf("bob memberships %+v", ms)
	}
	// Only rooms with events in the range: bob's invite ($e6) is one.
	if ch, err := s.UserMembershipsChanged(ctx, bob, stored[0].StreamPos-1, stored[1].StreamPos); err != nil || len(ch) != 1 || ch[0].EventID != "$e6" {
		t.Fatalf("bob memberships in changed rooms %+v %v", ch, err)
	}
	if ch, err := s.UserMembershipsChanged(ctx, bob, stored[1].StreamPos, stored[1].StreamPos); err != nil || len(ch) != 0 {
		t.Fatalf("bob memberships with nothing changed %+v %v", ch, err)
	}
	local, err := s.LocalMemberships(ctx, "test", []string{"join"})
	must(t, err)
	if len(local) != 1 || local[0].UserID != alice {
		t.Fatalf("local joined %+v", local)
	}
	hist, err := s.StateHistory(ctx, room, "m.room.member", string(bob))
	must(t, err)
	if len(hist) != 1 {
		t.Fatalf("history %v", hist)
	}
	spoke, err := s.SenderHasEvents(ctx, room, alice, 0, stored[1].StreamPos)
	must(t, err)
	quiet, err := s.SenderHasEvents(ctx, room, bob, stored[1].StreamPos, 1<<62)
	must(t, err)
	if !spoke || quiet {
		t.Fatalf("sender has events: %v %v", spoke, quiet)
	}
	cur, err := s.CurrentStateEvent(ctx, room, "m.room.member", string(bob))
	must(t, err)
	if cur.EventID != "$e6" {
		t.Fatalf("current state event %s", cur.EventID)
	}
	all, err := s.CurrentState(ctx, room)
	must(t, err)
	if len(all) != 3 {
		t.Fatalf("current state has %d events", len(all))
	}
}

func testStateSnapshots(t *testing.T, s storage.Store) {
	ctx := context.Background()
	_, err := s.StoreEvents(ctx, storage.StoreEventsRequest{RoomID: room,
		NewRoom: &storage.Room{RoomID: room, Version: "11", Creator: alice, CreatedTS: 1},
		Events:  []*storage.NewEvent{ev(1, "m.room.create", sk(""), alice)}})
	must(t, err)
	prev := id.EventID("$e1")
	groups := map[int]int64{}
	for n := 2; n <= 80; n++ {
		e := ev(n, "k", sk(fmt.Sprint(n%25)), alice, prev)
		if n%7 == 0 {
			e = ev(n, "m.room.message", nil, alice, prev)
		}
		stored, err := s.StoreEvents(ctx, storage.StoreEventsRequest{RoomID: room, ExpectExtremities: []id.EventID{prev}, Events: []*storage.NewEvent{e}})
		must(t, err)
		groups[n] = stored[0].StateAfter
		prev = e.EventID
	}
	// The state after event n: for each key k, the last state event m <= n with m%25 == k.
	for _, n := range []int{2, 30, 33, 34, 65, 80} {
		ids, err := s.StateIDs(ctx, groups[n])
		must(t, err)
		want := map[string]id.EventID{}
		for m := 2; m <= n; m++ {
			if m%7 != 0 {
				want[fmt.Sprint(m%25)] = id.EventID(fmt.Sprintf("$e%d", m))
			}
		}
		if len(ids) != len(want)+1 {
			t.Fatalf("after %d: %d entries, want %d", n, len(ids), len(want)+1)
		}
		for k, v := range want {
			if ids[storage.StateKeyTuple{Type: "k", StateKey: k}] != v {
				t.Fatalf("after %d: %s = %s, want %s", n, k, ids[storage.StateKeyTuple{Type: "k", StateKey: k}], v)
			}
		}
	}
}

func testAliases(t *testing.T, s storage.Store) {
	ctx := context.Background()
	must(t, s.CreateAlias(ctx, "#a:test", room, alice))
	wantErr(t, s.CreateAlias(ctx, "#a:test", "!other:test", bob), storage.ErrConflict)
	r, creator, err := s.ResolveAlias(ctx, "#a:test")
	must(t, err)
	if r != room || creator != alice {
		t.Fatalf("resolve %s %s", r, creator)
	}
	must(t, s.CreateAlias(ctx, "#b:test", room, bob))
	list, err := s.RoomAliases(ctx, room)
	must(t, err)
	if len(list) != 2 || list[0] != "#a:test" {
		t.Fatalf("aliases %v", list)
	}
	must(t, s.DeleteAlias(ctx, "#a:test"))
	wantErr(t, s.DeleteAlias(ctx, "#a:test"), storage.ErrNotFound)
	_, _, err = s.ResolveAlias(ctx, "#a:test")
	wantErr(t, err, storage.ErrNotFound)

	must(t, s.ForgetRoom(ctx, alice, room))
	must(t, s.ForgetRoom(ctx, alice, room))
	f, err := s.ForgottenRooms(ctx, alice)
	must(t, err)
	if !f[room] {
		t.Fatal("not forgotten")
	}
	must(t, s.UnforgetRoom(ctx, alice, room))
	if f, _ = s.ForgottenRooms(ctx, alice); f[room] {
		t.Fatal("still forgotten")
	}
}

func testMoveRoomDirectory(t *testing.T, s storage.Store) {
	ctx := context.Background()
	for _, r := range []id.RoomID{"!old:test", "!new:test"} {
		create := ev(1, "m.room.create", sk(""), alice)
		create.RoomID, create.EventID = r, id.EventID("$create"+string(r))
		_, err := s.StoreEvents(ctx, storage.StoreEventsRequest{RoomID: r,
			NewRoom: &storage.Room{RoomID: r, Version: "11", Creator: alice, CreatedTS: 1}, Events: []*storage.NewEvent{create}})
		must(t, err)
	}
	must(t, s.SetRoomPublic(ctx, "!old:test", true))
	must(t, s.CreateAlias(ctx, "#one:test", "!old:test", alice))
	must(t, s.CreateAlias(ctx, "#two:test", "!old:test", bob))
	must(t, s.CreateAlias(ctx, "#other:test", "!elsewhere:test", bob))
	must(t, s.MoveRoomDirectory(ctx, "!old:test", "!new:test"))
	list, err := s.RoomAliases(ctx, "!new:test")
	must(t, err)
	if len(list) != 2 || list[0] != "#one:test" || list[1] != "#two:test" {
		t.Fatalf("moved aliases %v", list)
	}
	if r, creator, err := s.ResolveAlias(ctx, "#two:test"); err != nil || r != "!new:test" || creator != bob {
		t.Fatalf("resolve moved alias: %s %s %v", r, creator, err)
	}
	if r, _, _ := s.ResolveAlias(ctx, "#other:test"); r != "!elsewhere:test" {
		t.Fatalf("unrelated alias moved to %s", r)
	}
	old, err := s.GetRoom(ctx, "!old:test")
	must(t, err)
	nr, err := s.GetRoom(ctx, "!new:test")
	must(t, err)
	if old.IsPublic || !nr.IsPublic {
		t.Fatalf("publication not moved: old %v new %v", old.IsPublic, nr.IsPublic)
	}
	ids, err := s.PublicRoomIDs(ctx)
	must(t, err)
	if len(ids) != 1 || ids[0] != "!new:test" {
		t.Fatalf("public rooms %v", ids)
	}
	wantErr(t, s.MoveRoomDirectory(ctx, "!old:test", "!missing:test"), storage.ErrNotFound)
	wantErr(t, s.MoveRoomDirectory(ctx, "!missing:test", "!new:test"), storage.ErrNotFound)
	if r, _, _ := s.ResolveAlias(ctx, "#one:test"); r != "!new:test" {
		t.Fatalf("failed move changed aliases: %s", r)
	}
}

// testBackfill: a room joined late (its state an outlier, the join the
// first timeline event) gets older events backfilled, newest first.
func testBackfill(t *testing.T, s storage.Store) {
	ctx := context.Background()
	create := ev(1, "m.room.create", sk(""), alice)
	create.Outlier, create.UpdateCurrentState = true, false
	creator := ev(2, "m.room.member", sk(string(alice)), alice, "$e1")
	creator.Outlier, creator.UpdateCurrentState = true, false
	join := ev(5, "m.room.member", sk(string(bob)), bob, "$e4")
	stored, err := s.StoreEvents(ctx, storage.StoreEventsRequest{RoomID: room,
		NewRoom:      &storage.Room{RoomID: room, Version: "11", Creator: alice, CreatedTS: 1},
		Events:       []*storage.NewEvent{create, creator, join},
		InitialState: map[storage.StateKeyTuple]id.EventID{{Type: "m.room.create"}: "$e1", {Type: "m.room.member", StateKey: string(alice)}: "$e2"}})
	must(t, err)
	group := stored[2].StateBefore
	maxBefore, err := s.MaxStreamPos(ctx)
	must(t, err)
	infoBefore, err := s.GetRoom(ctx, room)
	must(t, err)
	first, err := s.EarliestEvent(ctx, room)
	must(t, err)
	if first.EventID != "$e5" {
		t.Fatalf("earliest event %s, want the join", first.EventID)
	}

	m4 := ev(4, "m.room.message", nil, alice, "$e3")
	m3 := ev(3, "m.room.message", nil, alice, "$e2")
	again := ev(5, "m.room.member", sk(string(bob)), bob, "$e4")
	res, err := s.StoreBackfill(ctx, room, []*storage.NewEvent{again, m4, m3, creator, create}, group)
	must(t, err)
	if res[0].StreamPos != 0 {
		t.Fatalf("a timeline event was stored again: %+v", res[0])
	}
	for i := 1; i < len(res); i++ {
		if res[i].StreamPos >= 0 || (i > 1 && res[i].StreamPos >= res[i-1].StreamPos) || res[i].StateBefore != group {
			t.Fatalf("backfilled positions not negative and decreasing: %+v", res)
		}
	}
	if pos, err := s.MaxStreamPos(ctx); err != nil || pos != maxBefore {
		t.Fatalf("max stream position %d after backfill, was %d (%v)", pos, maxBefore, err)
	}
	ext, err := s.ForwardExtremities(ctx, room)
	must(t, err)
	if len(ext) != 1 || ext[0] != "$e5" {
		t.Fatalf("extremities after backfill %v", ext)
	}
	if info, err := s.GetRoom(ctx, room); err != nil || info.CurrentGroup != infoBefore.CurrentGroup {
		t.Fatalf("current state changed: %+v %v", info, err)
	}
	// Positions since 0 (sync) never include them; the whole history does, in order.
	evs, err := s.RoomEvents(ctx, room, 0, 1<<62, 10, false)
	must(t, err)
	if len(evs) != 1 || evs[0].EventID != "$e5" {
		t.Fatalf("events after position 0: %v", evs)
	}
	evs, err = s.RoomEvents(ctx, room, -1<<62, 1<<62, 10, false)
	must(t, err)
	var got []id.EventID
	for _, e := range evs {
		got = append(got, e.EventID)
	}
	if fmt.Sprint(got) != "[$e1 $e2 $e3 $e4 $e5]" {
		t.Fatalf("history %v", got)
	}
	if first, err = s.EarliestEvent(ctx, room); err != nil || first.EventID != "$e1" || first.Outlier {
		t.Fatalf("earliest event after backfill %+v %v", first, err)
	}
	// Backfilling the same events again changes nothing; a later backfill goes lower still.
	res, err = s.StoreBackfill(ctx, room, []*storage.NewEvent{m4, m3}, group)
	must(t, err)
	if res[0].StreamPos != 0 || res[1].StreamPos != 0 {
		t.Fatalf("known events backfilled again: %+v", res)
	}
	older := ev(6, "m.room.message", nil, alice)
	res, err = s.StoreBackfill(ctx, room, []*storage.NewEvent{older}, group)
	must(t, err)
	if res[0].StreamPos >= evs[0].StreamPos {
		t.Fatalf("later backfill at %d, not below %d", res[0].StreamPos, evs[0].StreamPos)
	}
}

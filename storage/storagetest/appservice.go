package storagetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

func runAppServices(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("AppServiceLeaseAndQueue", func(t *testing.T) { testAppServiceQueue(t, open(t)) })
	t.Run("AppServiceRoomDirectory", func(t *testing.T) { testAppServiceDirectory(t, open(t)) })
}

func testAppServiceQueue(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if _, err := s.AppServiceCursor(ctx, "irc"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("cursor before the first claim: %v", err)
	}
	// The lease: one owner at a time until it expires or is released.
	claim := func(owner string, now int64) bool {
		t.Helper()
		ok, err := s.ClaimAppService(ctx, "irc", owner, now, now+100, 7)
		must(t, err)
		return ok
	}
	if !claim("p1", 1000) || !claim("p1", 1050) || claim("p2", 1100) {
		t.Fatal("p1 must hold the lease until 1150")
	}
	if pos, err := s.AppServiceCursor(ctx, "irc"); err != nil || pos != 7 {
		t.Fatalf("cursor starts at the first claim's position: %d %v", pos, err)
	}
	wantErr(t, s.QueueAppServiceEvents(ctx, "irc", "p2", []id.EventID{"$x"}, 9), storage.ErrLeaseLost)
	if _, err := s.NextAppServiceTxn(ctx, "irc", "p2", 10); !errors.Is(err, storage.ErrLeaseLost) {
		t.Fatalf("next txn without the lease: %v", err)
	}
	if txn, err := s.NextAppServiceTxn(ctx, "irc", "p1", 10); err != nil || txn != nil {
		t.Fatalf("empty queue: %+v %v", txn, err)
	}

	must(t, s.QueueAppServiceEvents(ctx, "irc", "p1", []id.EventID{"$a", "$b", "$c"}, 12))
	must(t, s.QueueAppServiceEphemeral(ctx, map[string][][]byte{"irc": {[]byte(`{"type":"m.typing"}`)}, "other": {[]byte(`{}`)}}))
	if pos, _ := s.AppServiceCursor(ctx, "irc"); pos != 12 {
		t.Fatalf("cursor = %d, want 12", pos)
	}
	// The cursor never moves back.
	must(t, s.QueueAppServiceEvents(ctx, "irc", "p1", nil, 10))
	if pos, _ := s.AppServiceCursor(ctx, "irc"); pos != 12 {
		t.Fatalf("cursor moved back to %d", pos)
	}

	items := func(txn *storage.AppServiceTxn) []string {
		var out []string
		for _, it := range txn.Items {
			if it.Kind == storage.AppServiceItemEvent {
				out = append(out, string(it.EventID))
			} else {
				out = append(out, string(it.Payload))
			}
		}
		return out
	}
	txn, err := s.NextAppServiceTxn(ctx, "irc", "p1", 2)
	must(t, err)
	if txn.TxnID != 1 || !slices.Equal(items(txn), []string{"$a", "$b"}) {
		t.Fatalf("first txn %d %v", txn.TxnID, items(txn))
	}
	// Undelivered, it is handed out again, the same, even to the next owner.
	must(t, s.ReleaseAppService(ctx, "irc", "p1"))
	if !claim("p2", 1101) {
		t.Fatal("a released lease is free")
	}
	again, err := s.NextAppServiceTxn(ctx, "irc", "p2", 5)
	must(t, err)
	if again.TxnID != 1 || !slices.Equal(items(again), items(txn)) {
		t.Fatalf("retried txn %d %v", again.TxnID, items(again))
	}
	must(t, s.CompleteAppServiceTxn(ctx, "irc", 1))
	txn, err = s.NextAppServiceTxn(ctx, "irc", "p2", 5)
	must(t, err)
	if txn.TxnID != 2 || !slices.Equal(items(txn), []string{"$c", `{"type":"m.typing"}`}) {
		t.Fatalf("second txn %d %v", txn.TxnID, items(txn))
	}
	must(t, s.CompleteAppServiceTxn(ctx, "irc", 2))
	if txn, err := s.NextAppServiceTxn(ctx, "irc", "p2", 5); err != nil || txn != nil {
		t.Fatalf("queue not empty: %+v %v", txn, err)
	}
	// An expired lease can be taken over.
	if !claim("p3", 5000) {
		t.Fatal("expired lease not taken over")
	}

	// TimelineEventsAfter reads every room's accepted events in order.
	_, err = s.StoreEvents(ctx, storage.StoreEventsRequest{RoomID: room,
		NewRoom: &storage.Room{RoomID: room, Version: "11", Creator: alice, CreatedTS: 1},
		Events:  []*storage.NewEvent{ev(1, "m.room.create", sk(""), alice), ev(2, "m.room.member", sk(string(alice)), alice, "$e1"), ev(3, "m.room.message", nil, alice, "$e2")}})
	must(t, err)
	evs, err := s.TimelineEventsAfter(ctx, 0, 2)
	must(t, err)
	if len(evs) != 2 || evs[0].EventID != "$e1" || evs[1].EventID != "$e2" {
		t.Fatalf("first page %v", evs)
	}
	evs, err = s.TimelineEventsAfter(ctx, evs[1].StreamPos, 10)
	must(t, err)
	if len(evs) != 1 || evs[0].EventID != "$e3" {
		t.Fatalf("second page %v", evs)
	}
	// Rejected and soft-failed events are not part of the timeline.
	rejected, softFailed := ev(4, "m.room.message", nil, alice, "$e3"), ev(5, "m.room.message", nil, alice, "$e3")
	rejected.Rejected, softFailed.SoftFailed = true, true
	_, err = s.StoreEvents(ctx, storage.StoreEventsRequest{RoomID: room,
		Events: []*storage.NewEvent{rejected, softFailed, ev(6, "m.room.message", nil, alice, "$e3")}})
	must(t, err)
	evs, err = s.TimelineEventsAfter(ctx, evs[0].StreamPos, 10)
	must(t, err)
	if len(evs) != 1 || evs[0].EventID != "$e6" {
		t.Fatalf("after rejected and soft-failed events: %v", evs)
	}
}

func testAppServiceDirectory(t *testing.T, s storage.Store) {
	ctx := context.Background()
	must(t, s.SetAppServiceRoomPublic(ctx, "irc", "libera", "!a:test", true))
	must(t, s.SetAppServiceRoomPublic(ctx, "irc", "libera", "!a:test", true))
	must(t, s.SetAppServiceRoomPublic(ctx, "irc", "oftc", "!b:test", true))
	must(t, s.SetAppServiceRoomPublic(ctx, "slack", "acme", "!a:test", true))
	if got, _ := s.AppServicePublicRooms(ctx, "irc", "libera"); !slices.Equal(got, []id.RoomID{"!a:test"}) {
		t.Fatalf("libera %v", got)
	}
	if got, _ := s.AppServicePublicRooms(ctx, "", ""); !slices.Equal(got, []id.RoomID{"!a:test", "!b:test"}) {
		t.Fatalf("all networks %v", got)
	}
	must(t, s.SetAppServiceRoomPublic(ctx, "irc", "libera", "!a:test", false))
	if got, _ := s.AppServicePublicRooms(ctx, "irc", "libera"); len(got) != 0 {
		t.Fatalf("after removal %v", got)
	}
}

package sqlstore_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
)

// TestSlidingSyncReads checks the batched reads of sliding sync over rooms
// built through the API (SQLite, or PostgreSQL with PARLEY_TEST_DB=postgres).
func TestSlidingSyncReads(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	ctx := context.Background()
	mk := func(body map[string]any) id.RoomID {
		return id.RoomID(alice.MustDo(t, http.MethodPost, "createRoom", body).JSON["room_id"].(string))
	}
	quiet := mk(map[string]any{"name": "quiet"})
	busy := mk(map[string]any{"creation_content": map[string]any{"type": "m.space"}})
	msg := alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/t1", busy), map[string]any{"body": "x"}).JSON["event_id"].(string)
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.topic/", busy), map[string]any{"topic": "t"})
	store := srv.HS.Store

	ev, err := store.GetEvent(ctx, id.EventID(msg))
	if err != nil {
		t.Fatal(err)
	}
	act, err := store.JoinedRoomActivity(ctx, alice.UserID, []string{"m.room.message", "m.room.create"})
	if err != nil {
		t.Fatal(err)
	}
	if len(act) != 2 {
		t.Fatalf("activity of %d rooms, want 2: %v", len(act), act)
	}
	if a := act[busy]; a.Bump != ev.StreamPos || a.Last <= ev.StreamPos {
		t.Fatalf("busy room: %+v (message at %d, topic after it)", a, ev.StreamPos)
	}
	if a := act[quiet]; a.Bump == 0 || a.Bump >= a.Last {
		t.Fatalf("quiet room: create bumps, later state does not: %+v", a)
	}
	some, err := store.RoomsActivity(ctx, []id.RoomID{busy, "!unknown:hs1.test"}, []string{"m.room.message"})
	if err != nil {
		t.Fatal(err)
	}
	if len(some) != 1 || some[busy] != act[busy] {
		t.Fatalf("RoomsActivity: %v, want %v", some, act[busy])
	}
	none, err := store.JoinedRoomActivity(ctx, "@nobody:hs1.test", nil)
	if err != nil || len(none) != 0 {
		t.Fatalf("no rooms: %v %v", none, err)
	}

	evs, err := store.RoomsStateOfTypes(ctx, []id.RoomID{quiet, busy}, []string{"m.room.create", "m.room.name"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range evs {
		got[fmt.Sprint(e.RoomID, " ", e.Type)] = true
	}
	want := []string{string(quiet) + " m.room.create", string(quiet) + " m.room.name", string(busy) + " m.room.create"}
	if len(got) != len(want) {
		t.Fatalf("state: %v, want %v", got, want)
	}
	for _, w := range want {
		if !got[w] {
			t.Fatalf("state lacks %s: %v", w, got)
		}
	}
}

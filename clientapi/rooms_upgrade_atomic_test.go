package clientapi_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/tidwall/gjson"
	"go.uber.org/zap/zaptest"
	"maunium.net/go/mautrix/id"

	"parley/clientapi"
	"parley/internal/testserver"
	"parley/roomserver"
	"parley/storage"
)

// roomSnapshot is what a failed upgrade must leave unchanged in the old room.
type roomSnapshot struct {
	extremities []id.EventID
	alias       id.RoomID
	public      bool
	joined      []string
}

func snapshot(t *testing.T, srv *testserver.Server, c *testserver.Client, room, alias string) roomSnapshot {
	t.Helper()
	ctx := context.Background()
	ext, err := srv.HS.Store.ForwardExtremities(ctx, id.RoomID(room))
	if err != nil {
		t.Fatal(err)
	}
	r, err := srv.HS.Store.GetRoom(ctx, id.RoomID(room))
	if err != nil {
		t.Fatal(err)
	}
	aliased, _, _ := srv.HS.Store.ResolveAlias(ctx, id.RoomAlias(alias))
	var joined []string
	for _, j := range c.MustDo(t, http.MethodGet, "joined_rooms", nil).JSON["joined_rooms"].([]any) {
		joined = append(joined, j.(string))
	}
	slices.Sort(joined)
	return roomSnapshot{extremities: ext, alias: aliased, public: r.IsPublic, joined: joined}
}

// checkUntouched checks that the old room is as before and still works.
func checkUntouched(t *testing.T, srv *testserver.Server, alice, bob *testserver.Client, room, alias string, before roomSnapshot) {
	t.Helper()
	after := snapshot(t, srv, alice, room, alias)
	if !slices.Equal(after.extremities, before.extremities) || after.alias != before.alias || after.public != before.public || !slices.Equal(after.joined, before.joined) {
		t.Fatalf("failed upgrade changed things:\nbefore %+v\nafter  %+v", before, after)
	}
	wantErr(t, alice.Do(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.tombstone/", room), nil), http.StatusNotFound, "M_NOT_FOUND")
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/after-failed-upgrade", room), map[string]any{"msgtype": "m.text", "body": "still here"})
}

// A power level that room version 9 accepts (a string) fails the auth rules
// of version 10+: the replacement room cannot be built, and nothing is written.
func TestRoomUpgradeFailsAuthInNewRoom(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	hs := srv.HS.Config.ServerName
	old := createRoom(t, alice, map[string]any{"preset": "public_chat", "visibility": "public", "room_version": "9", "room_alias_name": "nine"})
	member(t, bob, old, "join", nil)
	pl := alice.MustDo(t, http.MethodGet, testserver.Sprintf("rooms/%s/state/m.room.power_levels/", old), nil).JSON
	pl["ban"] = "50"
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.power_levels/", old), pl)
	before := snapshot(t, srv, alice, old, "#nine:"+hs)
	all, err := srv.HS.Store.ListRooms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	roomsBefore := len(all)

	res := alice.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/upgrade", old), map[string]any{"new_version": "11"})
	wantErr(t, res, http.StatusBadRequest, "M_INVALID_ROOM_STATE")
	checkUntouched(t, srv, alice, bob, old, "#nine:"+hs, before)
	if rooms, err := srv.HS.Store.ListRooms(context.Background()); err != nil || len(rooms) != roomsBefore {
		t.Fatalf("a room was created by the failed upgrade: %d rooms, %d before (%v)", len(rooms), roomsBefore, err)
	}
}

// failingStore fails the write of the old room's tombstone, after the
// replacement room has been stored: the worst place for an upgrade to stop.
type failingStore struct {
	storage.Store
	room id.RoomID
	mu   sync.Mutex
	// replacement is the room the failed tombstone pointed to.
	replacement id.RoomID
}

var errInjected = errors.New("injected write failure")

func (f *failingStore) StoreEvents(ctx context.Context, req storage.StoreEventsRequest) ([]storage.StoredEvent, error) {
	if req.RoomID == f.room {
		for _, ev := range req.Events {
			if ev.Type == "m.room.tombstone" {
				f.mu.Lock()
				f.replacement = id.RoomID(gjson.GetBytes(ev.JSON, "content.replacement_room").Str)
				f.mu.Unlock()
				return nil, errInjected
			}
		}
	}
	return f.Store.StoreEvents(ctx, req)
}

func TestRoomUpgradeFailingMidwayLeavesOldRoom(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	hs := srv.HS.Config.ServerName
	old := createRoom(t, alice, map[string]any{"preset": "public_chat", "visibility": "public", "room_version": "10",
		"room_alias_name": "stay", "name": "Stay"})
	member(t, bob, old, "join", nil)
	before := snapshot(t, srv, alice, old, "#stay:"+hs)

	// A second client API and roomserver over the same database, whose
	// writes into the old room fail.
	fs := &failingStore{Store: srv.HS.Store, room: id.RoomID(old)}
	rs := roomserver.New(roomserver.Deps{Store: fs, Config: &srv.HS.Config, SigningKey: srv.HS.SigningKey, Log: zaptest.NewLogger(t)})
	api := clientapi.New(clientapi.Deps{Config: &srv.HS.Config, Store: srv.HS.Store, Log: srv.HS.Log, Rooms: rs})
	faulty := *alice
	faulty.S = testserver.Serve(t, api)
	res := faulty.Do(t, http.MethodPost, testserver.Sprintf("rooms/%s/upgrade", old), map[string]any{"new_version": "11"})
	if res.Status != http.StatusInternalServerError {
		t.Fatalf("upgrade with a failing write: %d %s", res.Status, res.Body)
	}
	fs.mu.Lock()
	replacement := fs.replacement
	fs.mu.Unlock()
	if replacement == "" {
		t.Fatal("the upgrade did not reach the tombstone")
	}
	checkUntouched(t, srv, alice, bob, old, "#stay:"+hs, before)
	// The replacement room exists but is abandoned: alice left it, nobody is
	// in it, and it is not in the directory.
	if m := membershipOf(t, alice, string(replacement), string(alice.UserID)); m != "leave" {
		t.Fatalf("alice in the abandoned room: %q", m)
	}
	for _, r := range chunkRoomIDs(alice.MustDo(t, http.MethodGet, "publicRooms", nil)) {
		if r == string(replacement) {
			t.Fatal("abandoned room is published")
		}
	}
	// The old room can still be upgraded properly.
	newRoom := alice.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/upgrade", old), map[string]any{"new_version": "11"}).JSON["replacement_room"].(string)
	if tomb := stateContent(t, alice, old, "m.room.tombstone"); tomb["replacement_room"] != newRoom || newRoom == string(replacement) {
		t.Fatalf("second upgrade: %v (abandoned %s)", tomb, replacement)
	}
	if got := alice.MustDo(t, http.MethodGet, "directory/room/%23stay:"+hs, nil).JSON["room_id"]; got != newRoom {
		t.Fatalf("alias after the second upgrade: %v", got)
	}
}

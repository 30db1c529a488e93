package keyserver_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"go.uber.org/zap/zaptest"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/config"
	"parley/internal/testserver"
	"parley/keyserver"
	"parley/storage"
	"parley/storage/sqlstore"
	"parley/syncapi"
)

// fakeRooms is an in-memory RoomMembership.
type fakeRooms struct {
	mu      sync.Mutex
	members map[id.RoomID]map[id.UserID]bool
}

func (f *fakeRooms) set(room id.RoomID, user id.UserID, joined bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.members[room] == nil {
		f.members[room] = map[id.UserID]bool{}
	}
	if joined {
		f.members[room][user] = true
	} else {
		delete(f.members[room], user)
	}
}

func (f *fakeRooms) SharedRoomUsers(_ context.Context, user id.UserID) (map[id.UserID]struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[id.UserID]struct{}{}
	for _, m := range f.members {
		if m[user] {
			for u := range m {
				out[u] = struct{}{}
			}
		}
	}
	return out, nil
}

func (f *fakeRooms) RoomJoinedUsers(_ context.Context, room id.RoomID) ([]id.UserID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []id.UserID
	for u := range f.members[room] {
		out = append(out, u)
	}
	return out, nil
}

func newTestStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "hs.db")
	if os.Getenv("PARLEY_TEST_DB") == "postgres" {
		url = testserver.PostgresDatabase(t)
	}
	st, err := sqlstore.New(context.Background(), url, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestDeviceListChangedLeft drives membership changes through a fake room
// source and checks what each user's device-list stream reports.
func TestDeviceListChangedLeft(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	rooms := &fakeRooms{members: map[id.RoomID]map[id.UserID]bool{}}
	cfg := config.Defaults()
	s := keyserver.New(keyserver.Deps{Config: &cfg, Store: st, Rooms: rooms, Notifier: syncapi.NewNotifier(), ServerName: "hs1.test", Log: zaptest.NewLogger(t)})
	stream := s.DeviceListStream()
	const (
		alice = id.UserID("@alice:hs1.test")
		bob   = id.UserID("@bob:hs1.test")
		carol = id.UserID("@carol:hs1.test")
		room  = id.RoomID("!a:hs1.test")
		room2 = id.RoomID("!b:hs1.test")
	)
	pos := func() int64 {
		p, err := stream.Position(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	check := func(user id.UserID, from int64, wantChanged, wantLeft []id.UserID) {
		t.Helper()
		resp := syncapi.NewResponse()
		req := &syncapi.Request{Device: &authn.Device{UserID: user, DeviceID: "D"}, Since: syncapi.Token{}}
		if _, err := stream.Fill(ctx, req, from, pos(), resp); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(resp.DeviceLists.Changed, wantChanged) || !slices.Equal(resp.DeviceLists.Left, wantLeft) {
			t.Fatalf("%s: changed %v left %v, want %v %v", user, resp.DeviceLists.Changed, resp.DeviceLists.Left, wantChanged, wantLeft)
		}
	}

	rooms.set(room, alice, true)
	s.MembershipChanged(ctx, room, alice, true) // alone: nothing to tell
	p0 := pos()
	rooms.set(room, bob, true)
	s.MembershipChanged(ctx, room, bob, true)
	check(alice, p0, []id.UserID{bob}, []id.UserID{})
	check(bob, p0, []id.UserID{alice}, []id.UserID{})
	check(carol, p0, []id.UserID{}, []id.UserID{})

	// Bob's key change reaches Alice (shared room) and Bob, not Carol.
	p1 := pos()
	if _, _, err := st.UploadKeys(ctx, keyUpload(bob)); err != nil {
		t.Fatal(err)
	}
	check(alice, p1, []id.UserID{bob}, []id.UserID{})
	check(bob, p1, []id.UserID{bob}, []id.UserID{})
	check(carol, p1, []id.UserID{}, []id.UserID{})

	// Bob also shares room2 with Alice: leaving one room is not "left".
	rooms.set(room2, alice, true)
	rooms.set(room2, bob, true)
	s.MembershipChanged(ctx, room2, bob, true)
	p2 := pos()
	rooms.set(room, bob, false)
	s.MembershipChanged(ctx, room, bob, false)
	check(alice, p2, []id.UserID{}, []id.UserID{})
	// Leaving the last shared room is.
	p3 := pos()
	rooms.set(room2, bob, false)
	s.MembershipChanged(ctx, room2, bob, false)
	check(alice, p3, []id.UserID{}, []id.UserID{bob})
	check(bob, p3, []id.UserID{}, []id.UserID{alice})
	// After leaving, Bob's key changes no longer reach Alice.
	p4 := pos()
	if _, _, err := st.UploadKeys(ctx, keyUpload(bob)); err != nil {
		t.Fatal(err)
	}
	check(alice, p4, []id.UserID{}, []id.UserID{})
	// Over the whole range, the last word wins: Bob is left, not changed.
	check(alice, p0, []id.UserID{}, []id.UserID{bob})
	// An invite: the room's members see the invitee as changed; the
	// invitee sees nothing until they join.
	p5 := pos()
	s.MemberEvent(ctx, room, carol, "invite")
	check(alice, p5, []id.UserID{carol}, []id.UserID{})
	check(carol, p5, []id.UserID{}, []id.UserID{})
	// Initial syncs carry no device lists.
	resp := syncapi.NewResponse()
	if found, err := stream.Fill(ctx, &syncapi.Request{Device: &authn.Device{UserID: alice}}, 0, pos(), resp); err != nil || found || len(resp.DeviceLists.Left) != 0 {
		t.Fatalf("initial sync: %v %v %v", found, err, resp.DeviceLists)
	}
}

// keyUpload is a device-key upload whose content differs on every call.
var uploads int

func keyUpload(user id.UserID) storage.KeyUpload {
	uploads++
	return storage.KeyUpload{UserID: user, DeviceID: "D", DeviceKeys: []byte(fmt.Sprintf(`{"n":%d}`, uploads))}
}

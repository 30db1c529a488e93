package roomserver_test

import (
	"bytes"
	"context"
	"encoding/json/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
	"parley/roomserver"
	"parley/storage"
)

// TestEventsVerifyAsRemote checks every stored event the way a remote server
// would: content hash, signature with our public key, event ID = reference hash,
// and (room v12) the room ID derived from the create event.
func TestEventsVerifyAsRemote(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	hs := srv.HS
	for _, v := range []string{"1", "2", "3", "10", "11", "12"} {
		res := alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"room_version": v, "preset": "public_chat", "name": "n", "topic": "t"})
		room := res.JSON["room_id"].(string)
		bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
		ev := bob.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/x%s", room, v), map[string]any{"body": "hi"}).JSON["event_id"].(string)
		alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/redact/%s/r%s", room, ev, v), map[string]any{})

		evs, err := hs.Store.RoomEvents(context.Background(), id.RoomID(room), 0, 1<<62, 1000, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) < 10 {
			t.Fatalf("v%s: only %d events", v, len(evs))
		}
		getKey := func(server string, keyID id.KeyID, _ time.Time) (id.SigningKey, time.Time, error) {
			if server == "hs1.test" && keyID == hs.SigningKey.ID {
				return hs.SigningKey.Pub, time.Now().Add(time.Hour), nil
			}
			return "", time.Time{}, nil
		}
		if v == "1" || v == "2" {
			verifyV1(t, id.RoomVersion(v), evs, getKey)
			continue
		}
		depth := int64(0)
		var prev id.EventID
		for _, e := range evs {
			var p pdu.PDU
			if err := json.Unmarshal(e.JSON, &p); err != nil {
				t.Fatalf("v%s %s: %v", v, e.EventID, err)
			}
			rv := id.RoomVersion(v)
			if !e.Redacted && !p.VerifyContentHash() {
				t.Fatalf("v%s %s: content hash mismatch", v, e.EventID)
			}
			if err := p.VerifySignature(rv, "hs1.test", getKey); err != nil {
				t.Fatalf("v%s %s: signature: %v", v, e.EventID, err)
			}
			evID, err := p.GetEventID(rv)
			if err != nil || evID != e.EventID {
				t.Fatalf("v%s: event ID %s, reference hash gives %s (%v)", v, e.EventID, evID, err)
			}
			if p.Depth <= depth {
				t.Fatalf("v%s: depth not increasing", v)
			}
			depth = p.Depth
			if prev != "" && (len(p.PrevEvents) != 1 || p.PrevEvents[0] != prev) {
				t.Fatalf("v%s: prev_events %v, want [%s]", v, p.PrevEvents, prev)
			}
			prev = e.EventID
			if p.Type == "m.room.create" {
				if rv.RoomIDIsCreateEventID() {
					rid, err := p.GetRoomID()
					if err != nil || string(rid) != room || p.RoomID != "" {
						t.Fatalf("v12 room ID %s, derived %s (%v)", room, rid, err)
					}
				}
			} else if string(p.RoomID) != room {
				t.Fatalf("v%s: room_id %s", v, p.RoomID)
			}
		}
	}
}

// TestConcurrentSendsDoNotFork sends from many goroutines into one room and
// checks the DAG stays linear.
func TestConcurrentSendsDoNotFork(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	room := id.RoomID(alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{}).JSON["room_id"].(string))
	rs := srv.HS.Rooms
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if _, err := rs.Send(context.Background(), roomserver.SendRequest{RoomID: room, Sender: alice.UserID, Type: "m.room.message", Content: []byte(`{"body":"x"}`)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	ext, err := srv.HS.Store.ForwardExtremities(context.Background(), room)
	if err != nil || len(ext) != 1 {
		t.Fatalf("forward extremities %v (%v)", ext, err)
	}
	evs, _ := srv.HS.Store.RoomEvents(context.Background(), room, 0, 1<<62, 1000, false)
	seen := map[id.EventID]bool{}
	for i, e := range evs {
		var p pdu.PDU
		_ = json.Unmarshal(e.JSON, &p)
		if i > 0 && (len(p.PrevEvents) != 1 || p.PrevEvents[0] != evs[i-1].EventID) {
			t.Fatalf("fork at %d: prev %v", i, p.PrevEvents)
		}
		seen[e.EventID] = true
	}
	if len(evs) < 80 {
		t.Fatalf("%d events", len(evs))
	}
}

// TestRejectedEventChangesNothing: an event the auth rules reject is not stored.
func TestRejectedEventChangesNothing(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	room := id.RoomID(alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{}).JSON["room_id"].(string))
	ctx := context.Background()
	before, _ := srv.HS.Store.MaxStreamPos(ctx)
	_, err := srv.HS.Rooms.Send(ctx, roomserver.SendRequest{RoomID: room, Sender: "@mallory:hs1.test", Type: "m.room.message", Content: []byte(`{}`)})
	if err == nil {
		t.Fatal("event from a non-member accepted")
	}
	after, _ := srv.HS.Store.MaxStreamPos(ctx)
	if before != after {
		t.Fatalf("rejected event stored: %d → %d", before, after)
	}
	// And the room still works.
	if _, err := srv.HS.Rooms.Send(ctx, roomserver.SendRequest{RoomID: room, Sender: alice.UserID, Type: "m.room.message", Content: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
}

// TestResolveStateLinear: resolving a state against itself and an older state
// of the same linear DAG gives the newer state (no conflict survives).
func TestResolveStateLinear(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	room := id.RoomID(alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{"name": "a"}).JSON["room_id"].(string))
	ctx := context.Background()
	info1, _ := srv.HS.Store.GetRoom(ctx, room)
	alice.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/state/m.room.name/", room), map[string]any{"name": "b"})
	info2, _ := srv.HS.Store.GetRoom(ctx, room)
	got, err := srv.HS.Rooms.ResolveState(ctx, info2.Version, []int64{info1.CurrentGroup, info2.CurrentGroup})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := srv.HS.Store.StateIDs(ctx, info2.CurrentGroup)
	if len(got) != len(want) {
		t.Fatalf("resolved %d entries, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%v: got %s want %s", k, got[k], v)
		}
	}
}

// TestTwoWritersSameDatabase: two server processes share one database; a
// server whose cached view of a room is stale must notice and rebuild on the
// other's events instead of forking the DAG.
func TestTwoWritersSameDatabase(t *testing.T) {
	srv1 := testserver.New(t)
	alice := srv1.Register(t, "alice")
	room := id.RoomID(alice.MustDo(t, http.MethodPost, "createRoom", map[string]any{}).JSON["room_id"].(string))
	srv2 := testserver.Start(t, srv1.Cfg)
	ctx := context.Background()
	send := func(s *testserver.Server) {
		t.Helper()
		if _, err := s.HS.Rooms.Send(ctx, roomserver.SendRequest{RoomID: room, Sender: alice.UserID, Type: "m.room.message", Content: []byte(`{"body":"x"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	send(srv1)
	send(srv2)
	send(srv1) // srv1's cache predates srv2's event
	send(srv2)
	ext, err := srv1.HS.Store.ForwardExtremities(ctx, room)
	if err != nil || len(ext) != 1 {
		t.Fatalf("forked: extremities %v (%v)", ext, err)
	}
	evs, _ := srv1.HS.Store.RoomEvents(ctx, room, 0, 1<<62, 100, false)
	for i := 1; i < len(evs); i++ {
		var p pdu.PDU
		_ = json.Unmarshal(evs[i].JSON, &p)
		if len(p.PrevEvents) != 1 || p.PrevEvents[0] != evs[i-1].EventID || p.Depth <= evs[i-1].Depth {
			t.Fatalf("event %d does not follow %d: prev %v", i, i-1, p.PrevEvents)
		}
	}
}

// TestCacheEviction: with a tiny cache, rooms are evicted and reloaded from
// storage without losing their DAG position.
func TestCacheEviction(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	ctx := context.Background()
	rs := roomserver.New(roomserver.Deps{Store: srv.HS.Store, Config: &srv.HS.Config, SigningKey: srv.HS.SigningKey, Log: zaptest.NewLogger(t), MaxCachedRooms: 2, MaxCachedState: 20})
	var rooms []id.RoomID
	for i := 0; i < 5; i++ {
		rid, _, err := rs.CreateRoom(ctx, roomserver.CreateRoomRequest{Creator: alice.UserID, Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		rooms = append(rooms, rid)
	}
	for round := 0; round < 3; round++ {
		for _, rid := range rooms {
			if _, err := rs.Send(ctx, roomserver.SendRequest{RoomID: rid, Sender: alice.UserID, Type: "m.room.message", Content: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, rid := range rooms {
		ext, err := srv.HS.Store.ForwardExtremities(ctx, rid)
		if err != nil || len(ext) != 1 {
			t.Fatalf("%s: extremities %v (%v)", rid, ext, err)
		}
	}
}

// verifyV1 checks room v1/v2 events: hashes, signatures, and prev_events
// pointing at the previous event with its reference hash.
func verifyV1(t *testing.T, rv id.RoomVersion, evs []*storage.Event, getKey pdu.GetKeyFunc) {
	t.Helper()
	var prevID id.EventID
	var prevRef [32]byte
	for _, e := range evs {
		var p pdu.RoomV1PDU
		if err := json.Unmarshal(e.JSON, &p); err != nil {
			t.Fatalf("v%s %s: %v", rv, e.EventID, err)
		}
		if p.EventID != e.EventID || !strings.HasSuffix(string(p.EventID), ":hs1.test") {
			t.Fatalf("v%s: event_id %s stored as %s", rv, p.EventID, e.EventID)
		}
		if !e.Redacted && !p.VerifyContentHash() {
			t.Fatalf("v%s %s: content hash mismatch", rv, e.EventID)
		}
		if err := p.VerifySignature(rv, "hs1.test", getKey); err != nil {
			t.Fatalf("v%s %s: signature: %v", rv, e.EventID, err)
		}
		if prevID != "" {
			if len(p.PrevEvents) != 1 || p.PrevEvents[0].ID != prevID || !bytes.Equal(p.PrevEvents[0].Hashes.SHA256, prevRef[:]) {
				t.Fatalf("v%s %s: prev_events %+v, want %s with its reference hash", rv, e.EventID, p.PrevEvents, prevID)
			}
		}
		ref, err := p.GetReferenceHash(rv)
		if err != nil {
			t.Fatal(err)
		}
		prevID, prevRef = p.EventID, ref
	}
}

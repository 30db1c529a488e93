package sqlstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/storage"
	"parley/storage/sqlstore"
)

// TestStreamPositionsSnapshot: the one-query snapshot agrees with each
// stream's own position method after writes to every stream.
func TestStreamPositionsSnapshot(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		check := func(when string) {
			t.Helper()
			snap, err := s.StreamPositions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var want storage.Positions
			for _, f := range []struct {
				dst *int64
				get func(context.Context) (int64, error)
			}{{&want.Events, s.MaxStreamPos}, {&want.AccountData, s.AccountDataPosition}, {&want.Receipt, s.ReceiptPosition},
				{&want.Notif, s.NotifPosition}, {&want.ToDevice, s.ToDevicePosition}, {&want.DeviceList, s.DeviceListPosition}} {
				if *f.dst, err = f.get(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if snap != want {
				t.Fatalf("%s: snapshot %+v, positions %+v", when, snap, want)
			}
		}
		check("empty")
		room := id.RoomID("!pos:hs")
		ev := &storage.NewEvent{Event: storage.Event{EventID: "$p1", RoomID: room, Type: "m.room.message", Sender: "@a:hs", Depth: 1,
			JSON: []byte(`{"type":"m.room.message","sender":"@a:hs","content":{}}`)}}
		if _, err := s.StoreEvents(ctx, storage.StoreEventsRequest{RoomID: room, NewRoom: &storage.Room{RoomID: room, Version: "11", Creator: "@a:hs"},
			Events: []*storage.NewEvent{ev}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateAccountData(ctx, "@a:hs", "", "m.test", func(json.RawMessage) (json.RawMessage, error) { return json.RawMessage(`{}`), nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutReceipt(ctx, storage.Receipt{RoomID: room, Type: "m.read", UserID: "@b:hs", EventID: "$p1"}, 1); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.SendToDevice(ctx, "@a:hs", "A", "t1", []storage.ToDeviceMessage{{UserID: "@b:hs", DeviceID: "B", Type: "m.test", Content: json.RawMessage(`{}`)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddDeviceListChanges(ctx, []storage.DeviceListChange{{UserID: "@a:hs", Observer: "@b:hs"}}); err != nil {
			t.Fatal(err)
		}
		check("after writes")
	})
}

// TestStateEventsMatchStateIDs: the one-query StateEvents returns the
// events of StateIDs for groups along a chain of deltas that overwrite keys.
func TestStateEventsMatchStateIDs(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		room := id.RoomID("!st:hs")
		var evs []*storage.NewEvent
		for i := 0; i < 40; i++ {
			key := fmt.Sprint("k", i%3)
			evs = append(evs, &storage.NewEvent{Event: storage.Event{EventID: id.EventID(fmt.Sprint("$s", i)), RoomID: room, Type: "m.test",
				StateKey: &key, Sender: "@a:hs", Depth: int64(i + 1),
				JSON: []byte(fmt.Sprintf(`{"type":"m.test","state_key":%q,"sender":"@a:hs","content":{"n":%d}}`, key, i))}, UpdateCurrentState: true})
		}
		stored, err := s.StoreEvents(ctx, storage.StoreEventsRequest{RoomID: room, NewRoom: &storage.Room{RoomID: room, Version: "11", Creator: "@a:hs"}, Events: evs})
		if err != nil {
			t.Fatal(err)
		}
		for i, st := range stored {
			ids, err := s.StateIDs(ctx, st.StateAfter)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.StateEvents(ctx, st.StateAfter)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(ids) || len(ids) != min(i+1, 3) {
				t.Fatalf("event %d: %d state events, %d ids", i, len(got), len(ids))
			}
			for _, ev := range got {
				if ids[storage.StateKeyTuple{Type: ev.Type, StateKey: *ev.StateKey}] != ev.EventID {
					t.Fatalf("event %d: state event %s is not the group's %v", i, ev.EventID, ids)
				}
			}
		}
	})
}

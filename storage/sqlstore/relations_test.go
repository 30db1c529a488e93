package sqlstore_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/storage"
	"parley/storage/sqlstore"
)

func TestRelationsIndexAndBackfill(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		room := id.RoomID("!rel:hs")
		ev := func(n int, content string) *storage.NewEvent {
			eid := id.EventID(fmt.Sprintf("$e%d", n))
			return &storage.NewEvent{Event: storage.Event{EventID: eid, RoomID: room, Type: "m.room.message", Sender: "@a:hs", Depth: int64(n),
				OriginTS: int64(1000 + n), JSON: []byte(`{"type":"m.room.message","sender":"@a:hs","content":` + content + `}`)}}
		}
		evs := []*storage.NewEvent{
			ev(1, `{"body":"root"}`),
			ev(2, `{"body":"t","m.relates_to":{"rel_type":"m.thread","event_id":"$e1"}}`),
			ev(3, `{"body":"e","m.relates_to":{"rel_type":"m.replace","event_id":"$e1"}}`),
			ev(4, `{"body":"bad","m.relates_to":{"rel_type":5,"event_id":"$e1"}}`),
			ev(5, `{"body":"reply","m.relates_to":{"m.in_reply_to":{"event_id":"$e1"}}}`),
			ev(6, `{"body":"nested","m.relates_to":{"rel_type":"m.reference","event_id":"$e2"}}`),
		}
		if _, err := s.StoreEvents(ctx, storage.StoreEventsRequest{RoomID: room, NewRoom: &storage.Room{RoomID: room, Version: "11", Creator: "@a:hs"}, Events: evs}); err != nil {
			t.Fatal(err)
		}
		list := func(depth int) []id.EventID {
			t.Helper()
			got, err := s.Relations(ctx, storage.RelationsQuery{RoomID: room, EventID: "$e1", Hi: 1 << 62, Limit: 10, Depth: depth})
			if err != nil {
				t.Fatal(err)
			}
			var ids []id.EventID
			for _, e := range got {
				ids = append(ids, e.EventID)
			}
			return ids
		}
		want := []id.EventID{"$e2", "$e3"}
		if got := list(1); !slices.Equal(got, want) {
			t.Fatalf("indexed relations: %v want %v", got, want)
		}
		if got := list(3); !slices.Equal(got, []id.EventID{"$e2", "$e3", "$e6"}) {
			t.Fatalf("recursive relations: %v", got)
		}
		// The backfill migration rebuilds the same index from stored events.
		if err := s.ExecForTest(ctx, `DELETE FROM relations`); err != nil {
			t.Fatal(err)
		}
		if got := list(1); len(got) != 0 {
			t.Fatalf("relations after delete: %v", got)
		}
		if err := s.RerunMigrationForTest(ctx, "rooms", "0004_relations_backfill.sql"); err != nil {
			t.Fatal(err)
		}
		if got := list(1); !slices.Equal(got, want) {
			t.Fatalf("backfilled relations: %v want %v", got, want)
		}
		aggs, err := s.Aggregations(ctx, "@b:hs", []*storage.Event{&evs[0].Event})
		if err != nil {
			t.Fatal(err)
		}
		if a := aggs["$e1"]; a == nil || a.ThreadCount != 1 || a.ThreadLatest != "$e2" || a.Replace == nil || a.Replace.EventID != "$e3" || a.ThreadParticipated {
			t.Fatalf("aggregations: %+v", a)
		}
	})
}

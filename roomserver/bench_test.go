package roomserver_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
	"parley/roomserver"
)

// BenchmarkSendOneRoom measures events persisted per second into one busy room.
func BenchmarkSendOneRoom(b *testing.B) {
	srv := testserver.New(b)
	alice := srv.Register(b, "alice")
	room := id.RoomID(alice.MustDo(b, http.MethodPost, "createRoom", map[string]any{}).JSON["room_id"].(string))
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := srv.HS.Rooms.Send(ctx, roomserver.SendRequest{RoomID: room, Sender: alice.UserID, Type: "m.room.message", Content: []byte(`{"msgtype":"m.text","body":"hello"}`)}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkSendManyRooms measures events persisted per second spread over 50 rooms in parallel.
func BenchmarkSendManyRooms(b *testing.B) {
	srv := testserver.New(b)
	alice := srv.Register(b, "alice")
	var rooms []id.RoomID
	for i := 0; i < 50; i++ {
		rooms = append(rooms, id.RoomID(alice.MustDo(b, http.MethodPost, "createRoom", map[string]any{}).JSON["room_id"].(string)))
	}
	ctx := context.Background()
	var n atomic.Int64
	b.ResetTimer()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			room := rooms[n.Add(1)%int64(len(rooms))]
			if _, err := srv.HS.Rooms.Send(ctx, roomserver.SendRequest{RoomID: room, Sender: alice.UserID, Type: "m.room.message", Content: []byte(`{"msgtype":"m.text","body":"hello"}`)}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

package syncapi_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"parley/internal/testserver"
)

// BenchmarkInitialSync: a user in 50 rooms with 20 messages each does an initial /sync.
func BenchmarkInitialSync(b *testing.B) {
	srv := testserver.New(b)
	alice := srv.Register(b, "alice")
	for r := 0; r < 50; r++ {
		room := alice.MustDo(b, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)
		for i := 0; i < 20; i++ {
			alice.MustDo(b, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/%s", room, fmt.Sprint(r, "_", i)), map[string]any{"body": "hello", "msgtype": "m.text"})
		}
	}
	b.ResetTimer()
	for b.Loop() {
		alice.MustDo(b, http.MethodGet, "sync", nil)
	}
}

// BenchmarkIncrementalSync: one new message, then an incremental /sync.
func BenchmarkIncrementalSync(b *testing.B) {
	srv := testserver.New(b)
	alice := srv.Register(b, "alice")
	var rooms []string
	for r := 0; r < 20; r++ {
		rooms = append(rooms, alice.MustDo(b, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string))
	}
	next := alice.MustDo(b, http.MethodGet, "sync", nil).JSON["next_batch"].(string)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		alice.MustDo(b, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/b%s", rooms[i%len(rooms)], fmt.Sprint(i)), map[string]any{"body": "hello"})
		res := alice.MustDo(b, http.MethodGet, "sync?"+url.Values{"since": {next}, "timeout": {"1000"}}.Encode(), nil)
		next = res.JSON["next_batch"].(string)
	}
}

// BenchmarkSendBusyRoomHTTP: PUT /send into a room with 21 members, through
// HTTP, with push rules evaluated for every member (the inbox).
func BenchmarkSendBusyRoomHTTP(b *testing.B) {
	srv := testserver.New(b)
	alice := srv.Register(b, "alice")
	room := alice.MustDo(b, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)
	for i := 0; i < 20; i++ {
		u := srv.Register(b, fmt.Sprint("u", i))
		u.MustDo(b, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		alice.MustDo(b, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/b%s", room, fmt.Sprint(i)), map[string]any{"body": "hello", "msgtype": "m.text"})
	}
}

package syncapi_test

import (
	"fmt"
	"net/http"
	"testing"

	"parley/internal/testserver"
)

// BenchmarkSendNotifying measures a message send into a room where another
// local user is notified: event persistence plus push rule evaluation and
// the notification write, which run before the send returns.
func BenchmarkSendNotifying(b *testing.B) {
	srv := testserver.New(b)
	alice := srv.Register(b, "alice")
	bob := srv.Register(b, "bob")
	room := alice.MustDo(b, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)
	bob.MustDo(b, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		alice.MustDo(b, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/%s", room, fmt.Sprint("b", i)),
			map[string]any{"msgtype": "m.text", "body": "hi"})
	}
}

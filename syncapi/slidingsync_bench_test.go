package syncapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"parley/internal/testserver"
)

// BenchmarkSlidingSync: a user in 500 rooms (one message each) with a
// 20-room window. "first" is the first response of a new connection;
// "incremental" is a message sent to a room outside the top of the list,
// then the next response (which moves it to the top); "send_to_wake" is the
// time from a send to the return of a waiting long-poll.
func BenchmarkSlidingSync(b *testing.B) {
	srv := testserver.New(b)
	alice := srv.Register(b, "alice")
	var rooms []string
	for r := 0; r < 500; r++ {
		room := createRoomB(b, alice, r)
		rooms = append(rooms, room)
		alice.MustDo(b, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/s%s", room, fmt.Sprint(r)),
			map[string]any{"body": "hello", "msgtype": "m.text"})
	}
	body := map[string]any{"lists": map[string]any{"all": map[string]any{
		"ranges": [][]int{{0, 19}}, "timeline_limit": 1,
		"required_state": [][]string{{"m.room.create", ""}, {"m.room.name", ""}, {"m.room.avatar", ""}, {"m.room.member", "$ME"}},
	}}}
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			r := alice.MustDo(b, http.MethodPost, ssPath, body)
			if n := len(r.JSON["rooms"].(map[string]any)); n != 20 {
				b.Fatalf("window has %d rooms", n)
			}
		}
	})
	b.Run("incremental", func(b *testing.B) {
		pos := alice.MustDo(b, http.MethodPost, ssPath, body).JSON["pos"].(string)
		i := 0
		for b.Loop() {
			i++
			room := rooms[(i*37)%len(rooms)]
			alice.MustDo(b, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/i%s", room, fmt.Sprint(i)),
				map[string]any{"body": "hi", "msgtype": "m.text"})
			r := alice.MustDo(b, http.MethodPost, ssPath+"?timeout=1000&pos="+pos, body)
			if _, ok := r.JSON["rooms"].(map[string]any)[room]; !ok {
				b.Fatalf("room %s not in the response", room)
			}
			pos = r.JSON["pos"].(string)
		}
	})
	b.Run("send_to_wake", func(b *testing.B) {
		pos := alice.MustDo(b, http.MethodPost, ssPath, body).JSON["pos"].(string)
		var total time.Duration
		i := 0
		for b.Loop() {
			i++
			done := make(chan string, 1)
			var sentAt time.Time
			go func() {
				r := alice.MustDo(b, http.MethodPost, ssPath+"?timeout=5000&pos="+pos, body)
				done <- r.JSON["pos"].(string)
			}()
			time.Sleep(2 * time.Millisecond)
			sentAt = time.Now()
			alice.MustDo(b, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/w%s", rooms[i%len(rooms)], fmt.Sprint(i)),
				map[string]any{"body": "hi", "msgtype": "m.text"})
			pos = <-done
			total += time.Since(sentAt)
		}
		b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/send_to_wake")
	})
}

func createRoomB(b *testing.B, c *testserver.Client, i int) string {
	b.Helper()
	return c.MustDo(b, http.MethodPost, "createRoom", map[string]any{"name": fmt.Sprint("room ", i)}).JSON["room_id"].(string)
}

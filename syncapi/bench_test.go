package syncapi_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"parley/internal/testserver"
)

// BenchmarkInitialSync: a user in 50 (and 500) rooms with 20 messages each
// does an initial /sync (the figures: 50 rooms under 30 ms).
func BenchmarkInitialSync(b *testing.B) {
	for _, rooms := range []int{50, 500} {
		b.Run(fmt.Sprint(rooms, "rooms"), func(b *testing.B) { benchInitialSync(b, rooms, 20) })
	}
}

func benchInitialSync(b *testing.B, rooms, msgs int) {
	srv := testserver.New(b)
	alice := srv.Register(b, "alice")
	for r := 0; r < rooms; r++ {
		room := alice.MustDo(b, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)
		for i := 0; i < msgs; i++ {
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

// BenchmarkSendToSync: alice sends into a room while bob long-polls /sync;
// each iteration is the time from the send starting to bob's /sync returning
// the event. Reports p50 and p99 (the target: p99 under 3 ms).
func BenchmarkSendToSync(b *testing.B) {
	srv := testserver.New(b)
	alice := srv.Register(b, "alice")
	bob := srv.Register(b, "bob")
	room := alice.MustDo(b, http.MethodPost, "createRoom", map[string]any{"preset": "public_chat"}).JSON["room_id"].(string)
	bob.MustDo(b, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	next := bob.MustDo(b, http.MethodGet, "sync", nil).JSON["next_batch"].(string)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		done := make(chan string, 1)
		go func(since string) {
			res := bob.MustDo(b, http.MethodGet, "sync?"+url.Values{"since": {since}, "timeout": {"10000"}}.Encode(), nil)
			done <- res.JSON["next_batch"].(string)
		}(next)
		time.Sleep(2 * time.Millisecond) // let the long-poll park
		start := time.Now()
		alice.MustDo(b, http.MethodPut, testserver.Sprintf("rooms/%s/send/m.room.message/l%s", room, fmt.Sprint(i)), map[string]any{"body": "ping", "msgtype": "m.text"})
		next = <-done
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

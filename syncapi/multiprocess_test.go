package syncapi_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"parley/internal/testserver"
)

// TestSyncAcrossProcesses: two Parley processes share one PostgreSQL
// database. A message sent through one wakes a /sync long-poll waiting in
// the other, including for a user who joined through the other process, and
// the writing process counts notifications for members who joined through
// the other one (its push context follows the room's state).
func TestSyncAcrossProcesses(t *testing.T) {
	if os.Getenv("PARLEY_TEST_DB") != "postgres" {
		t.Skip("SQLite serves one process; run with PARLEY_TEST_DB=postgres")
	}
	srv1 := testserver.New(t)
	srv2 := testserver.Start(t, srv1.Cfg)
	alice := srv1.Register(t, "alice")
	bob := srv1.Register(t, "bob")
	alice2 := *alice
	alice2.S = srv2
	room := newRoom(t, alice, bob)
	// The second process evaluates push rules for the room once (caching its members).
	sendMsg(t, &alice2, room, text("first"))
	waitCounts(t, bob, room, counts{1, 0}, nil)

	// Carol joins through the first process, then long-polls on the first
	// process while alice sends through the second.
	carol := srv1.Register(t, "carol")
	carol.MustDo(t, http.MethodPost, testserver.Sprintf("rooms/%s/join", room), map[string]any{})
	s := inboxSync(t, carol, nil)
	got := make(chan *syncResp, 1)
	go func() {
		got <- inboxSync(t, carol, map[string]string{"since": s.NextBatch, "timeout": "30000"})
	}()
	time.Sleep(200 * time.Millisecond) // let the long-poll park
	ev := sendMsg(t, &alice2, room, text("from the other process"))
	select {
	case r := <-got:
		if !strings.Contains(fmt.Sprintf("%s", r.raw), ev) {
			t.Fatalf("woken sync lacks %s: %s", ev, r.raw)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a long-poll on one process was not woken by a message sent through the other")
	}
	// The second process counted carol's notification although she joined through the first.
	waitCounts(t, carol, room, counts{1, 0}, nil)

	// Typing through one process shows in the other's /sync, and so does its
	// end (read incrementally from one token, so the change cannot slip by).
	since := inboxSync(t, carol, nil).NextBatch
	typingIn := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := inboxSync(t, carol, map[string]string{"since": since, "timeout": "1000"})
			since = r.NextBatch
			for _, e := range r.Rooms.Join[room].Ephemeral.Events {
				if e.Type == "m.typing" && strings.Contains(string(e.Content), string(alice.UserID)) == want {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("carol on the first process never saw alice typing=%v", want)
			}
		}
	}
	alice2.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/typing/%s", room, alice.UserID), map[string]any{"typing": true, "timeout": 30000})
	typingIn(true)
	alice2.MustDo(t, http.MethodPut, testserver.Sprintf("rooms/%s/typing/%s", room, alice.UserID), map[string]any{"typing": false})
	typingIn(false)
}

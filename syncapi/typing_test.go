package syncapi_test

import (
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
)

func typingUsers(t *testing.T, s *syncResp, room id.RoomID) ([]any, bool) {
	t.Helper()
	evs := findType(s.Rooms.Join[room].Ephemeral.Events, "m.typing")
	if len(evs) == 0 {
		return nil, false
	}
	if len(evs) > 1 {
		t.Fatalf("several m.typing events: %s", s.raw)
	}
	users, _ := evs[0].content()["user_ids"].([]any)
	return users, true
}

func TestTyping(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := newRoom(t, alice, bob)
	typing := testserver.Sprintf("rooms/%s/typing/%s", room, alice.UserID)

	wantErr(t, bob.Do(t, http.MethodPut, typing, map[string]any{"typing": true}), 403, "M_FORBIDDEN")
	wantErr(t, carol.Do(t, http.MethodPut, testserver.Sprintf("rooms/%s/typing/%s", room, carol.UserID), map[string]any{"typing": true}), 403, "M_FORBIDDEN")
	wantErr(t, alice.Do(t, http.MethodPut, typing, map[string]any{"timeout": 100}), 400, "M_BAD_JSON")
	wantErr(t, alice.Do(t, http.MethodPut, typing, map[string]any{"typing": "yes"}), 400, "M_BAD_JSON")

	s0 := inboxSync(t, bob, nil)
	// Bob long-polls; alice starts typing while he waits.
	done := make(chan *syncResp, 1)
	go func() { done <- inboxSync(t, bob, map[string]string{"since": s0.NextBatch, "timeout": "10000"}) }()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	alice.MustDo(t, http.MethodPut, typing, map[string]any{"typing": true, "timeout": 30000})
	var s1 *syncResp
	select {
	case s1 = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("bob's long-poll was not woken by typing")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("long-poll woke after %v", d)
	}
	if users, ok := typingUsers(t, s1, room); !ok || len(users) != 1 || users[0] != string(alice.UserID) {
		t.Fatalf("bob's sync lacks alice typing: %s", s1.raw)
	}
	// Carol (not in the room) sees nothing.
	if _, ok := inboxSync(t, carol, nil).Rooms.Join[room]; ok {
		t.Fatal("carol sees the room")
	}
	// Stop typing.
	alice.MustDo(t, http.MethodPut, typing, map[string]any{"typing": false})
	s2 := inboxSync(t, bob, map[string]string{"since": s1.NextBatch, "timeout": "5000"})
	if users, ok := typingUsers(t, s2, room); !ok || len(users) != 0 {
		t.Fatalf("stop not delivered: %s", s2.raw)
	}
	// Expiry: typing with a short timeout ends on its own.
	alice.MustDo(t, http.MethodPut, typing, map[string]any{"typing": true, "timeout": 300})
	s3 := inboxSync(t, bob, map[string]string{"since": s2.NextBatch, "timeout": "5000"})
	if users, _ := typingUsers(t, s3, room); len(users) != 1 {
		t.Fatalf("typing not delivered: %s", s3.raw)
	}
	s4 := inboxSync(t, bob, map[string]string{"since": s3.NextBatch, "timeout": "5000"})
	if users, ok := typingUsers(t, s4, room); !ok || len(users) != 0 {
		t.Fatalf("typing did not expire: %s", s4.raw)
	}
}

// TestTypingStopAfterTokenAtZero: a token issued before anyone typed (typing
// position 0) is a real position; a start and stop after it must still reach
// the client as an m.typing with no users.
func TestTypingStopAfterTokenAtZero(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := newRoom(t, alice, bob)
	typing := testserver.Sprintf("rooms/%s/typing/%s", room, alice.UserID)

	s0 := inboxSync(t, bob, nil)
	alice.MustDo(t, http.MethodPut, typing, map[string]any{"typing": true, "timeout": 30000})
	alice.MustDo(t, http.MethodPut, typing, map[string]any{"typing": false})
	s1 := inboxSync(t, bob, map[string]string{"since": s0.NextBatch, "timeout": "0"})
	if users, ok := typingUsers(t, s1, room); !ok || len(users) != 0 {
		t.Fatalf("stop since a position-0 token not delivered: %s", s1.raw)
	}
	// An initial sync after the stop gets the (empty) typing set too; a room
	// where nobody ever typed gets none.
	quiet := newRoom(t, alice, bob)
	s2 := inboxSync(t, bob, nil)
	if users, ok := typingUsers(t, s2, room); !ok || len(users) != 0 {
		t.Fatalf("initial sync lacks the empty m.typing: %s", s2.raw)
	}
	if _, ok := typingUsers(t, s2, quiet); ok {
		t.Fatalf("initial sync has m.typing for a room nobody typed in: %s", s2.raw)
	}
}

package syncapi_test

import (
	"net/http"
	"testing"

	"parley/internal/testserver"
)

// TestCountsWrittenWithEvent checks that when a send returns, the other
// members' counts already include it (the notifications are stored in the
// event's transaction), computed on the room's state after every earlier
// state change: a display name or a membership set just before the message.
func TestCountsWrittenWithEvent(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	dave := srv.Register(t, "dave")
	room := newRoom(t, alice, bob)
	now := func(c *testserver.Client) counts {
		t.Helper()
		return unread(t, inboxSync(t, c, nil), room)
	}
	sendMsg(t, alice, room, text("warm up"))
	if c := now(bob); c != (counts{1, 0}) {
		t.Fatalf("bob after one message: %+v", c)
	}
	// The push context cached by the first message must not be reused.
	bob.MustDo(t, http.MethodPut, testserver.Sprintf("profile/%s/displayname", bob.UserID), map[string]any{"displayname": "Zebedee"})
	sendMsg(t, alice, room, text("hi Zebedee"))
	if c := now(bob); c != (counts{2, 1}) {
		t.Fatalf("bob after a message with his new name: %+v", c)
	}
	dave.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	sendMsg(t, alice, room, text("welcome"))
	if c := now(dave); c != (counts{1, 0}) {
		t.Fatalf("dave after joining: %+v", c)
	}
	if c := now(bob); c != (counts{3, 1}) {
		t.Fatalf("bob: %+v", c)
	}
	// Own messages never count.
	sendMsg(t, bob, room, text("Zebedee here"))
	if c := now(bob); c != (counts{3, 1}) {
		t.Fatalf("bob after his own message: %+v", c)
	}
	if c := now(alice); c != (counts{1, 0}) {
		t.Fatalf("alice: %+v", c)
	}
}

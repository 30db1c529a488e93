package federation_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
)

// ephemeral returns the JSON text of a joined room's ephemeral events in a fresh /sync.
func ephemeral(t *testing.T, c *testserver.Client, roomID id.RoomID) string {
	t.Helper()
	res := c.MustDo(t, http.MethodGet, "sync", nil)
	rooms, _ := res.JSON["rooms"].(map[string]any)
	join, _ := rooms["join"].(map[string]any)
	room, _ := join[string(roomID)].(map[string]any)
	eph, _ := room["ephemeral"].(map[string]any)
	evs, _ := eph["events"].([]any)
	var b strings.Builder
	for _, e := range evs {
		m := e.(map[string]any)
		b.WriteString(m["type"].(string))
		b.WriteString(":")
		b.WriteString(strings.ReplaceAll(strings.TrimSpace(toJSON(m["content"])), "\n", ""))
		b.WriteString(";")
	}
	return b.String()
}

func TestTypingAndReceiptsAcrossServers(t *testing.T) {
	f := joinedPair(t)
	room := url.PathEscape(string(f.room))
	f.alice.MustDo(t, http.MethodPut, "rooms/"+room+"/typing/"+url.PathEscape(string(f.alice.UserID)), map[string]any{"typing": true, "timeout": 20000})
	eventually(t, "alice typing on hs2", func() bool {
		e := ephemeral(t, f.bob, f.room)
		return strings.Contains(e, "m.typing:") && strings.Contains(e, string(f.alice.UserID))
	})
	msg := send(t, f.alice, f.room, "read me")
	eventually(t, "message on hs2", func() bool { return hasBody(timelineBodies(t, f.bob, f.room), "read me") })
	f.bob.MustDo(t, http.MethodPost, "rooms/"+room+"/receipt/m.read/"+url.PathEscape(string(msg)), map[string]any{})
	eventually(t, "bob's receipt on hs1", func() bool {
		e := ephemeral(t, f.alice, f.room)
		return strings.Contains(e, "m.receipt:") && strings.Contains(e, string(f.bob.UserID)) && strings.Contains(e, string(msg))
	})
}

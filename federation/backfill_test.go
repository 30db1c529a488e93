package federation_test

import (
	"context"
	"encoding/json/jsontext"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"parley/internal/testserver"
	"parley/roomserver"
	"parley/storage"
)

// backfillSpy wraps a server's link to other servers: it counts backfill
// requests and may rewrite their answers.
type backfillSpy struct {
	roomserver.Remote
	calls  atomic.Int32
	tamper func([]jsontext.Value) []jsontext.Value
}

func (b *backfillSpy) Backfill(ctx context.Context, server string, roomID id.RoomID, from []id.EventID, limit int) ([]jsontext.Value, error) {
	b.calls.Add(1)
	out, err := b.Remote.Backfill(ctx, server, roomID, from, limit)
	if err == nil && b.tamper != nil {
		out = b.tamper(out)
	}
	return out, err
}

func spyBackfill(hs *testserver.Server) *backfillSpy {
	spy := &backfillSpy{Remote: hs.HS.Rooms.GetRemote()}
	hs.HS.Rooms.SetRemote(spy)
	return spy
}

// historyRoom has alice on hs1 create a room with the given preset and
// history visibility, send n messages "m1".."mn", and bob on hs2 join it.
func historyRoom(t *testing.T, visibility string, n int) (hs1, hs2 *testserver.Server, bob *testserver.Client, roomID id.RoomID) {
	t.Helper()
	hs1, hs2 = pair(t)
	alice := hs1.Register(t, "alice")
	bob = hs2.Register(t, "bob")
	roomID = createRoom(t, alice, map[string]any{"preset": "public_chat", "initial_state": []any{
		map[string]any{"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": visibility}}}})
	for i := 1; i <= n; i++ {
		send(t, alice, roomID, "m"+strconv.Itoa(i))
	}
	bob.MustDo(t, http.MethodPost, "join/"+url.PathEscape(string(roomID))+"?server_name=hs1.test", map[string]any{})
	return hs1, hs2, bob, roomID
}

// page is one /messages page: message bodies and event IDs, newest first.
type page struct {
	bodies, ids []string
	types       []string
	end         string
}

func messagesPage(t *testing.T, c *testserver.Client, roomID id.RoomID, from string, limit int) page {
	t.Helper()
	path := "rooms/" + url.PathEscape(string(roomID)) + "/messages?dir=b&limit=" + strconv.Itoa(limit)
	if from != "" {
		path += "&from=" + url.QueryEscape(from)
	}
	res := c.MustDo(t, http.MethodGet, path, nil)
	var p page
	for _, ev := range gjson.GetBytes(res.Body, "chunk").Array() {
		p.ids = append(p.ids, ev.Get("event_id").Str)
		p.types = append(p.types, ev.Get("type").Str)
		if ev.Get("type").Str == "m.room.message" {
			p.bodies = append(p.bodies, ev.Get("content.body").Str)
		}
	}
	p.end = gjson.GetBytes(res.Body, "end").Str
	return p
}

func expectedBodies(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, "m"+strconv.Itoa(i))
	}
	return out
}

func TestBackfillPastJoin(t *testing.T) {
	_, hs2, bob, roomID := historyRoom(t, "shared", 30)
	spy := spyBackfill(hs2)
	sync0 := bob.MustDo(t, http.MethodGet, "sync", nil)
	since := sync0.JSON["next_batch"].(string)

	// Before the backfill hs2 has nothing of the room's history.
	p := messagesPage(t, bob, roomID, "", 100)
	bodies := slices.Clone(p.bodies)
	slices.Reverse(bodies)
	if !slices.Equal(bodies, expectedBodies(30)) {
		t.Fatalf("bodies after backfill: %v", bodies)
	}
	if spy.calls.Load() != 1 {
		t.Fatalf("backfill requests: %d, want 1", spy.calls.Load())
	}
	if p.types[len(p.types)-1] != "m.room.create" {
		t.Fatalf("history does not reach the create event: %v", p.types)
	}
	if seen := slices.Compact(slices.Sorted(slices.Values(p.ids))); len(seen) != len(p.ids) {
		t.Fatalf("duplicate events in %v", p.ids)
	}

	// Paging again, in small pages: all stored, in order, no new request.
	var again []string
	var ids []string
	from := ""
	for i := 0; i < 20; i++ {
		pg := messagesPage(t, bob, roomID, from, 7)
		again = append(again, pg.bodies...)
		ids = append(ids, pg.ids...)
		if len(pg.ids) == 0 || pg.end == "" {
			break
		}
		from = pg.end
	}
	slices.Reverse(again)
	if !slices.Equal(again, expectedBodies(30)) {
		t.Fatalf("bodies paging in small pages: %v", again)
	}
	if !slices.Equal(ids, p.ids) {
		t.Fatalf("small pages: %v, one page: %v", ids, p.ids)
	}
	if spy.calls.Load() != 1 {
		t.Fatalf("backfill requests after paging again: %d, want 1", spy.calls.Load())
	}
	if strings.Contains(from, "-") == false {
		t.Fatalf("pagination token of backfilled history %q is not a negative position", from)
	}

	// An incremental /sync does not return backfilled history.
	res := bob.MustDo(t, http.MethodGet, "sync?timeout=0&since="+url.QueryEscape(since), nil)
	for _, ev := range gjson.GetBytes(res.Body, "rooms.join."+gjson.Escape(string(roomID))+".timeline.events").Array() {
		if ev.Get("type").Str == "m.room.message" {
			t.Fatalf("incremental sync returned backfilled %s", ev.Raw)
		}
	}
	// Nor does the next one, from a token taken after the backfill.
	next := res.JSON["next_batch"].(string)
	res = bob.MustDo(t, http.MethodGet, "sync?timeout=0&since="+url.QueryEscape(next), nil)
	if gjson.GetBytes(res.Body, "rooms.join."+gjson.Escape(string(roomID))).Exists() {
		t.Fatalf("sync after backfill shows the room: %s", res.Body)
	}
}

// Backfilled events keep the room's history visibility: in a room whose
// history is visible to joined members only, a user who joined later sees
// none of what came before.
func TestBackfillKeepsHistoryVisibility(t *testing.T) {
	_, hs2, bob, roomID := historyRoom(t, "joined", 12)
	spy := spyBackfill(hs2)
	// A short page backfills only recent messages, not the history
	// visibility event: they are judged by the earliest local state.
	p := messagesPage(t, bob, roomID, "", 4)
	if spy.calls.Load() != 1 {
		t.Fatalf("backfill requests: %d, want 1", spy.calls.Load())
	}
	if len(p.bodies) != 0 {
		t.Fatalf("bob sees history from before his join: %v", p.bodies)
	}
	p = messagesPage(t, bob, roomID, "", 100)
	if len(p.bodies) != 0 {
		t.Fatalf("bob sees history from before his join: %v %v", p.bodies, p.types)
	}
	// hs2 did store the whole history, hidden from bob.
	first, err := hs2.HS.Store.EarliestEvent(context.Background(), roomID)
	if err != nil || first.Type != "m.room.create" || first.StreamPos >= 0 {
		t.Fatalf("earliest event on hs2: %+v, %v", first, err)
	}
	evs, err := hs2.HS.Store.RoomEvents(context.Background(), roomID, -1<<62, 0, 100, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := countType(evs, "m.room.message"); n != 12 {
		t.Fatalf("%d backfilled messages stored, want 12", n)
	}
}

// PDUs of a backfill answer that fail the checks on receipt (bad
// signature, malformed) are not stored; the others are.
func TestBackfillRejectsBadPDUs(t *testing.T) {
	_, hs2, bob, roomID := historyRoom(t, "shared", 10)
	spy := spyBackfill(hs2)
	spy.tamper = func(in []jsontext.Value) []jsontext.Value {
		var out []jsontext.Value
		for _, raw := range in {
			if gjson.GetBytes(raw, "content.body").Str == "m5" {
				// A changed origin_server_ts breaks the signature (and the event ID).
				ts := gjson.GetBytes(raw, "origin_server_ts").Int()
				raw = jsontext.Value(strings.Replace(string(raw), fmt.Sprintf(`"origin_server_ts":%d`, ts), fmt.Sprintf(`"origin_server_ts":%d`, ts+1), 1))
			}
			out = append(out, raw)
		}
		return append(out, jsontext.Value(`{"type":"m.room.message","room_id":"`+string(roomID)+`"}`), jsontext.Value(`[1,2]`))
	}
	p := messagesPage(t, bob, roomID, "", 100)
	bodies := slices.Clone(p.bodies)
	slices.Reverse(bodies)
	want := slices.DeleteFunc(expectedBodies(10), func(b string) bool { return b == "m5" })
	if !slices.Equal(bodies, want) {
		t.Fatalf("bodies: %v, want %v", bodies, want)
	}
	if spy.calls.Load() != 1 {
		t.Fatalf("backfill requests: %d", spy.calls.Load())
	}
}

func countType(evs []*storage.Event, typ string) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// A remote that cannot be reached ends the page with what is local; the
// next request asks again.
func TestBackfillUnreachableRemote(t *testing.T) {
	hs1, hs2, bob, roomID := historyRoom(t, "shared", 5)
	spy := spyBackfill(hs2)
	hs1.StopFederation()
	p := messagesPage(t, bob, roomID, "", 50)
	if len(p.bodies) != 0 || len(p.ids) == 0 || spy.calls.Load() != 1 {
		t.Fatalf("page with the remote down: %v (%d backfill requests)", p.types, spy.calls.Load())
	}
	hs1.StartFederation(t)
	p = messagesPage(t, bob, roomID, "", 50)
	bodies := slices.Clone(p.bodies)
	slices.Reverse(bodies)
	if !slices.Equal(bodies, expectedBodies(5)) || spy.calls.Load() != 2 {
		t.Fatalf("page with the remote back: %v (%d backfill requests)", bodies, spy.calls.Load())
	}
}

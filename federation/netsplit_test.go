package federation_test

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"testing"

	"parley/storage"
)

// stateOf returns the room's current state as "type|state_key=event_id" strings.
func stateOf(t *testing.T, st storage.Store, f *roomFixture) []string {
	t.Helper()
	evs, err := st.CurrentState(context.Background(), f.room)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Type+"|"+*e.StateKey+"="+string(e.EventID))
	}
	sort.Strings(out)
	return out
}

func TestNetsplitHealsAndQueueSurvivesRestart(t *testing.T) {
	f := joinedPair(t)
	room := url.PathEscape(string(f.room))
	// bob gets power to change the room name too.
	pl := f.alice.MustDo(t, http.MethodGet, "rooms/"+room+"/state/m.room.power_levels/", nil).JSON
	pl["users"].(map[string]any)[string(f.bob.UserID)] = 100
	f.alice.MustDo(t, http.MethodPut, "rooms/"+room+"/state/m.room.power_levels/", pl)
	eventually(t, "power levels on hs2", func() bool {
		res := f.bob.MustDo(t, http.MethodGet, "rooms/"+room+"/state/m.room.power_levels/", nil)
		return res.JSON["users"].(map[string]any)[string(f.bob.UserID)] == float64(100)
	})
	// Netsplit: neither server can reach the other; both keep sending, and
	// both rename the room (a state conflict).
	f.hs1.StopFederation()
	f.hs2.StopFederation()
	send(t, f.alice, f.room, "alice during split")
	f.alice.MustDo(t, http.MethodPut, "rooms/"+room+"/state/m.room.name/", map[string]any{"name": "Name from hs1"})
	send(t, f.bob, f.room, "bob during split")
	f.bob.MustDo(t, http.MethodPut, "rooms/"+room+"/state/m.room.name/", map[string]any{"name": "Name from hs2"})
	f.bob.MustDo(t, http.MethodPut, "rooms/"+room+"/state/m.room.topic/", map[string]any{"topic": "Topic from hs2"})
	pending, err := f.hs1.HS.Store.PendingOutbound(context.Background(), "hs2.test", "pdu", 50)
	if err != nil || len(pending) == 0 {
		t.Fatalf("nothing queued for hs2 during the split: %v", err)
	}

	// hs1 restarts while hs2 is unreachable: its queue is in the database.
	f.hs1.Restart(t)
	f.alice.S = f.hs1
	send(t, f.alice, f.room, "alice after restart")

	// Heal.
	f.hs2.StartFederation(t)
	eventually(t, "hs2 receives everything", func() bool {
		b := timelineBodies(t, f.bob, f.room)
		return hasBody(b, "alice during split") && hasBody(b, "alice after restart")
	})
	eventually(t, "hs1 receives bob's split message", func() bool { return hasBody(timelineBodies(t, f.alice, f.room), "bob during split") })
	// Both sides agree on the room state.
	send(t, f.alice, f.room, "after heal")
	eventually(t, "final message on hs2", func() bool { return hasBody(timelineBodies(t, f.bob, f.room), "after heal") })
	s1, s2 := stateOf(t, f.hs1.HS.Store, f), stateOf(t, f.hs2.HS.Store, f)
	if len(s1) != len(s2) {
		t.Fatalf("state differs:\nhs1 %v\nhs2 %v", s1, s2)
	}
	for i := range s1 {
		if s1[i] != s2[i] {
			t.Fatalf("state differs:\nhs1 %v\nhs2 %v", s1, s2)
		}
	}
	n1 := f.alice.MustDo(t, http.MethodGet, "rooms/"+room+"/state/m.room.name/", nil).JSON["name"]
	n2 := f.bob.MustDo(t, http.MethodGet, "rooms/"+room+"/state/m.room.name/", nil).JSON["name"]
	if n1 != n2 || (n1 != "Name from hs1" && n1 != "Name from hs2") {
		t.Fatalf("names after heal: hs1 %v, hs2 %v", n1, n2)
	}
	if tp := f.alice.MustDo(t, http.MethodGet, "rooms/"+room+"/state/m.room.topic/", nil).JSON["topic"]; tp != "Topic from hs2" {
		t.Fatalf("topic on hs1: %v", tp)
	}
}

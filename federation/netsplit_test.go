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
	// Netsplit: neither server can reach the other; both keep sending.
	f.hs1.StopFederation()
	f.hs2.StopFederation()
	send(t, f.alice, f.room, "alice during split")
	f.alice.MustDo(t, http.MethodPut, "rooms/"+room+"/state/m.room.name/", map[string]any{"name": "Split"})
	send(t, f.bob, f.room, "bob during split")
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
	res := f.bob.MustDo(t, http.MethodGet, "rooms/"+room+"/state/m.room.name/", nil)
	if res.JSON["name"] != "Split" {
		t.Fatalf("name on hs2: %s", res.Body)
	}
}

package testmx

import (
	"context"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

const (
	alice = id.UserID("@alice:a.test")
	bob   = id.UserID("@bob:b.test")
)

func build(t *testing.T, v id.RoomVersion) (*Room, []id.EventID) {
	r := NewRoom(t, v, alice, nil)
	ids := []id.EventID{r.Create}
	ids = append(ids, r.Member("", alice, alice, event.MembershipJoin))
	users := map[string]any{alice.String(): 100}
	if v.PrivilegedRoomCreators() {
		users = map[string]any{} // creators may not be listed
	}
	ids = append(ids, r.State("", alice, event.StatePowerLevels.Type, "", map[string]any{"users": users}))
	ids = append(ids, r.State("", alice, event.StateJoinRules.Type, "", map[string]any{"join_rule": "public"}))
	ids = append(ids, r.Member("", bob, bob, event.MembershipJoin))
	return r, ids
}

func TestRoomEventsAreValid(t *testing.T) {
	for _, v := range []id.RoomVersion{id.RoomV10, id.RoomV11, id.RoomV12} {
		t.Run("v"+string(v), func(t *testing.T) {
			r, ids := build(t, v)
			if v.RoomIDIsCreateEventID() && r.ID != id.RoomID("!"+r.Create[1:]) {
				t.Errorf("room ID %s is not derived from the create event %s", r.ID, r.Create)
			}
			for i, evID := range ids {
				ev := r.Event(evID)
				if got, err := ev.GetEventID(v); err != nil || got != evID {
					t.Errorf("event %d: ID %s, recomputed %s (%v)", i, evID, got, err)
				}
				if !ev.VerifyContentHash() {
					t.Errorf("event %d: bad content hash", i)
				}
				if err := ev.VerifySignature(v, ev.Sender.Homeserver(), GetKey); err != nil {
					t.Errorf("event %d: signature: %v", i, err)
				}
				if err := eventauth.Authorize(v, ev, nil, r.getEvents, GetKey); err != nil {
					t.Errorf("event %d (%s): auth: %v", i, ev.Type, err)
				}
				if i > 0 && (len(ev.PrevEvents) != 1 || ev.PrevEvents[0] != ids[i-1] || ev.Depth != int64(i+1)) {
					t.Errorf("event %d: prev %v depth %d", i, ev.PrevEvents, ev.Depth)
				}
			}
			join := r.Event(ids[4])
			want := map[pdu.StateKey]bool{
				{Type: event.StatePowerLevels.Type}: true, {Type: event.StateJoinRules.Type}: true,
			}
			if !v.RoomIDIsCreateEventID() {
				want[pdu.StateKey{Type: event.StateCreate.Type}] = true
			}
			if len(join.AuthEvents) != len(want) {
				t.Errorf("bob's join auth events %v, want %d events", join.AuthEvents, len(want))
			}
			for _, a := range join.AuthEvents {
				ae := r.Event(a)
				if !want[pdu.StateKey{Type: ae.Type, StateKey: *ae.StateKey}] {
					t.Errorf("unexpected auth event %s %s", ae.Type, *ae.StateKey)
				}
			}
			state := r.After(r.Last)
			if state[pdu.StateKey{Type: event.StateMember.Type, StateKey: bob.String()}] != ids[4] || len(state) != len(ids) {
				t.Errorf("state after last event: %v", state)
			}
		})
	}
}

// Event IDs come from a fixed key and timestamps, so fixtures are stable.
func TestDeterministic(t *testing.T) {
	_, a := build(t, id.RoomV12)
	_, b := build(t, id.RoomV12)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("event %d: %s vs %s", i, a[i], b[i])
		}
	}
}

func TestRejectedAndFetch(t *testing.T) {
	r, _ := build(t, id.RoomV11)
	before := r.After(r.Last)
	bad := r.Add(Event{Sender: bob, Type: event.StatePowerLevels.Type, StateKey: new(""),
		Content: map[string]any{"users": map[string]any{bob.String(): 100}}, Rejected: true})
	if !r.Event(bad).InternalMeta.Rejected {
		t.Error("event not marked rejected")
	}
	if got := r.After(bad); len(got) != len(before) || got[pdu.StateKey{Type: event.StatePowerLevels.Type}] == bad {
		t.Error("rejected event changed the state")
	}
	evs, err := r.Fetch(context.Background(), []id.EventID{bad, "$missing", r.Create})
	if err != nil || len(evs) != 2 || r.FetchCalls != 1 {
		t.Errorf("fetch: %d events, err %v, calls %d", len(evs), err, r.FetchCalls)
	}
}

package stateres

import (
	"context"
	"maps"
	"os"
	"slices"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"parley/internal/testmx"
)

var (
	alice   = id.UserID("@alice:a.test")
	bob     = id.UserID("@bob:b.test")
	charlie = id.UserID("@charlie:c.test")
	dave    = id.UserID("@dave:d.test")
)

// allVersions are the room versions the scenario tests run under: v2 (the
// first with state resolution v2, server-chosen event IDs), v6, v10 (strict
// integer power levels), v11 (creator taken from the sender) and v12 (state
// resolution v2.1, infinitely powerful creators).
var allVersions = []id.RoomVersion{id.RoomV2, id.RoomV6, id.RoomV10, id.RoomV11, id.RoomV12}

func TestMain(m *testing.M) {
	// Room version 2 event IDs are not reference hashes: mautrix's eventauth
	// must use the IDs we carry in InternalMeta. A homeserver sets this too.
	pdu.UseInternalMetaForGetEventID = true
	os.Exit(m.Run())
}

const noteType = "org.example.note"

var (
	plKey    = StateKey{Type: event.StatePowerLevels.Type}
	jrKey    = StateKey{Type: event.StateJoinRules.Type}
	topicKey = StateKey{Type: event.StateTopic.Type}
	noteKey  = StateKey{Type: noteType}
)

func memberKey(u id.UserID) StateKey {
	return StateKey{Type: event.StateMember.Type, StateKey: u.String()}
}

// plContent returns power levels granting users their levels; room creators
// are left out in versions where they have infinite power and may not be
// listed. Topics need 50; notes (noteType) anyone.
func plContent(v id.RoomVersion, users map[id.UserID]int) map[string]any {
	u := map[string]any{}
	for user, level := range users {
		if v.PrivilegedRoomCreators() && user == alice {
			continue
		}
		u[user.String()] = level
	}
	return map[string]any{
		"users": u, "users_default": 0, "events_default": 0, "state_default": 50,
		"ban": 50, "kick": 50, "invite": 0, "redact": 50,
		"events": map[string]any{noteType: 0},
	}
}

// fixture is a room with a common history: alice creates it (power 100, or
// infinite in v12), sets power levels P1 (bob 50), public join rules and a
// topic; bob and charlie join.
type fixture struct {
	*testmx.Room
	t     testing.TB
	p1    id.EventID
	jr    id.EventID
	topic id.EventID
	joinB id.EventID
	joinC id.EventID
	base  id.EventID // last event of the common history
}

func newFixture(t testing.TB, v id.RoomVersion) *fixture {
	t.Helper()
	r := testmx.NewRoom(t, v, alice, nil)
	f := &fixture{Room: r, t: t}
	r.Member("", alice, alice, event.MembershipJoin)
	f.p1 = r.State("", alice, event.StatePowerLevels.Type, "", plContent(v, map[id.UserID]int{alice: 100, bob: 50}))
	f.jr = r.State("", alice, event.StateJoinRules.Type, "", map[string]any{"join_rule": "public"})
	f.topic = r.State("", alice, event.StateTopic.Type, "", map[string]any{"topic": "base"})
	f.joinB = r.Member("", bob, bob, event.MembershipJoin)
	f.joinC = r.Member("", charlie, charlie, event.MembershipJoin)
	f.base = r.Last
	return f
}

// resolve runs Resolve and checks that the result does not depend on the
// order of the state sets.
func (f *fixture) resolve(sets ...StateMap) StateMap {
	f.t.Helper()
	return resolveWith(f.t, f.Room, sets...)
}

func resolveWith(t testing.TB, r *testmx.Room, sets ...StateMap) StateMap {
	t.Helper()
	inputs := make([]StateMap, len(sets))
	for i, s := range sets {
		inputs[i] = maps.Clone(s)
	}
	got, err := Resolve(context.Background(), r.Version, sets, r.Fetch)
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	for i := range sets {
		if !maps.Equal(sets[i], inputs[i]) {
			t.Fatalf("resolve modified state set %d", i)
		}
	}
	reversed := slices.Clone(sets)
	slices.Reverse(reversed)
	again, err := Resolve(context.Background(), r.Version, reversed, r.Fetch)
	if err != nil {
		t.Fatalf("resolve (reversed): %v", err)
	}
	if !maps.Equal(got, again) {
		t.Fatalf("result depends on the order of the state sets:\n%v\n%v", got, again)
	}
	return got
}

// with returns a copy of s with the given events set for their keys.
func (f *fixture) with(s StateMap, evIDs ...id.EventID) StateMap {
	f.t.Helper()
	out := maps.Clone(s)
	for _, evID := range evIDs {
		ev := f.Event(evID)
		out[StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = evID
	}
	return out
}

func wantEvent(t testing.TB, got StateMap, key StateKey, want id.EventID, why string) {
	t.Helper()
	if got[key] != want {
		t.Errorf("%s/%s = %s, want %s (%s)", key.Type, key.StateKey, got[key], want, why)
	}
}

func wantAbsent(t testing.TB, got StateMap, key StateKey, why string) {
	t.Helper()
	if v, ok := got[key]; ok {
		t.Errorf("%s/%s = %s, want absent (%s)", key.Type, key.StateKey, v, why)
	}
}

func forEachVersion(t *testing.T, fn func(t *testing.T, v id.RoomVersion)) {
	for _, v := range allVersions {
		t.Run("v"+string(v), func(t *testing.T) { fn(t, v) })
	}
}

package stateres

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"parley/internal/testmx"
)

// randomForks grows a few branches from the fixture's common history with
// random events that pass auth on their branch (kicks, bans, joins, leaves,
// power level changes, join rule changes, notes), and returns the state
// after each branch.
func randomForks(t *testing.T, v id.RoomVersion, rng *rand.Rand) (*fixture, []StateMap) {
	f := newFixture(t, v)
	users := []id.UserID{alice, bob, charlie, dave}
	tips := make([]id.EventID, 2+rng.IntN(2))
	for b := range tips {
		tips[b] = f.base
		for range 3 + rng.IntN(6) {
			tips[b] = randomEvent(f, tips[b], users, rng)
		}
	}
	sets := make([]StateMap, len(tips))
	for i, tip := range tips {
		sets[i] = f.After(tip)
	}
	return f, sets
}

// randomEvent tries random events after prev until one passes auth.
func randomEvent(f *fixture, prev id.EventID, users []id.UserID, rng *rand.Rand) id.EventID {
	state := f.After(prev)
	for {
		sender := users[rng.IntN(len(users))]
		target := users[rng.IntN(len(users))]
		var e testmx.Event
		e.Sender, e.Prev = sender, []id.EventID{prev}
		switch rng.IntN(6) {
		case 0:
			ms := []string{"join", "leave", "ban", "invite"}[rng.IntN(4)]
			e.Type, e.StateKey = event.StateMember.Type, new(target.String())
			e.Content = map[string]any{"membership": ms}
		case 1:
			levels := map[id.UserID]int{alice: 100}
			for _, u := range users[1:] {
				levels[u] = []int{0, 50, 100}[rng.IntN(3)]
			}
			e.Type, e.StateKey = event.StatePowerLevels.Type, new("")
			e.Content = plContent(f.Version, levels)
		case 2:
			e.Type, e.StateKey = event.StateJoinRules.Type, new("")
			e.Content = map[string]any{"join_rule": []string{"public", "invite"}[rng.IntN(2)]}
		default:
			e.Type, e.StateKey = noteType, new(fmt.Sprint(rng.IntN(3)))
			e.Content = map[string]any{"n": rng.IntN(100)}
		}
		if !passes(f, state, e) {
			continue
		}
		return f.Add(e)
	}
}

// passes reports whether e would pass auth after the state, checking an
// unsigned copy with eventauth before the real event is signed and added.
func passes(f *fixture, state StateMap, e testmx.Event) bool {
	content, _ := jsonMarshal(e.Content)
	ev := &pdu.PDU{Type: e.Type, StateKey: e.StateKey, Sender: e.Sender, Content: content, RoomID: f.ID,
		PrevEvents: e.Prev, AuthEvents: []id.EventID{}}
	var auth []*pdu.PDU
	for _, key := range ev.AuthEventSelection(f.Version) {
		if a, ok := state[key]; ok {
			auth = append(auth, f.Event(a))
			ev.AuthEvents = append(ev.AuthEvents, a)
		}
	}
	if auth == nil {
		auth = []*pdu.PDU{}
	}
	return authorize(f, ev, auth) == nil
}

// Resolution of random forks never fails, keeps the unconflicted state, maps
// keys to events of that key, and does not depend on the order of the state
// sets or of the fetched events.
func TestRandomForksProperties(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		rng := rand.New(rand.NewPCG(42, uint64(len(v))))
		for round := range 15 {
			f, sets := randomForks(t, v, rng)
			got, err := Resolve(context.Background(), v, sets, f.Fetch)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			unconflicted, conflicted := partition(sets)
			for k, e := range unconflicted {
				if got[k] != e {
					t.Errorf("round %d: unconflicted %v changed", round, k)
				}
			}
			// Resolved values come from the state sets or their auth chains
			// (an auth difference event may win), always under their own key.
			for k, e := range got {
				ev := f.Event(e)
				if ev.StateKey == nil || (StateKey{Type: ev.Type, StateKey: *ev.StateKey}) != k {
					t.Errorf("round %d: %v = %s, an event of another key", round, k, e)
				}
			}
			if len(conflicted) == 0 {
				t.Errorf("round %d: no conflict generated", round)
			}
			perm := slices.Clone(sets)
			rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
			shuffledFetch := func(ctx context.Context, ids []id.EventID) ([]*pdu.PDU, error) {
				evs, err := f.Fetch(ctx, ids)
				rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
				return evs, err
			}
			again, err := Resolve(context.Background(), v, perm, shuffledFetch)
			if err != nil {
				t.Fatalf("round %d (shuffled): %v", round, err)
			}
			if !maps.Equal(got, again) {
				t.Errorf("round %d: result depends on input order", round)
			}
		}
	})
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func authorize(f *fixture, ev *pdu.PDU, auth []*pdu.PDU) error {
	getEvents := func(ids []id.EventID) ([]*pdu.PDU, error) { return f.Fetch(context.Background(), ids) }
	return eventauth.Authorize(f.Version, ev, auth, getEvents, testmx.GetKey)
}

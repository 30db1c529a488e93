package stateres

import (
	"context"
	"slices"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/testmx"
)

func loadGraph(t *testing.T, r *testmx.Room, ids ...id.EventID) *graph {
	t.Helper()
	g := newGraph(context.Background(), r.Version, r.Fetch, nil)
	if err := g.loadClosure(ids); err != nil {
		t.Fatalf("load: %v", err)
	}
	return g
}

func (g *graph) mustIdx(t *testing.T, ids ...id.EventID) []int32 {
	t.Helper()
	out := make([]int32, len(ids))
	for i, evID := range ids {
		j, ok := g.idx[evID]
		if !ok || j < 0 {
			t.Fatalf("event %s not loaded", evID)
		}
		out[i] = j
	}
	return out
}

func (g *graph) ids(is []int32) []id.EventID {
	out := make([]id.EventID, len(is))
	for k, i := range is {
		out[k] = g.nodes[i].id
	}
	return out
}

func checkOrder(t *testing.T, names map[id.EventID]string, got, want []id.EventID) {
	t.Helper()
	if !slices.Equal(got, want) {
		n := func(l []id.EventID) []string {
			var s []string
			for _, e := range l {
				s = append(s, names[e])
			}
			return s
		}
		t.Errorf("order = %v, want %v", n(got), n(want))
	}
}

// Auth events come before the events they authorise; among candidates the
// sender with more power goes first, regardless of timestamps.
func TestReverseTopologicalPowerOrder(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		// Sent in this order, so timestamps rise: kick < promote.
		kick := f.Member(f.base, bob, charlie, event.MembershipLeave)
		promote := f.State(f.base, alice, event.StatePowerLevels.Type, "", plContent(v, map[id.UserID]int{alice: 100, bob: 60}))
		g := loadGraph(t, f.Room, kick, promote)
		names := map[id.EventID]string{f.p1: "P1", f.joinB: "joinB", f.joinC: "joinC", kick: "kick", promote: "promote", f.jr: "JR"}
		// Shuffle the input: the result must not depend on it.
		set := g.mustIdx(t, kick, f.joinC, promote, f.joinB, f.p1)
		got, err := g.reverseTopologicalPowerOrder(set)
		if err != nil {
			t.Fatal(err)
		}
		// P1 has no auth event in the set and goes first. Then the candidates
		// are promote (alice: 100 or infinite), joinB (bob: 50) and joinC
		// (charlie: 0); kick needs joinB and joinC first.
		checkOrder(t, names, g.ids(got), []id.EventID{f.p1, promote, f.joinB, f.joinC, kick})
	})
}

// Auth ancestry counts even through events outside the sorted set: bob's
// kick cites charlie's second join, which cites his first join; with only the
// kick and the first join in the set, the join must still come first although
// bob has more power than charlie.
func TestReverseTopologicalPowerOrderIndirectAncestry(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		rejoin := f.State(f.base, charlie, event.StateMember.Type, charlie.String(), map[string]any{"membership": "join", "displayname": "C"})
		kick := f.Member(rejoin, bob, charlie, event.MembershipLeave)
		g := loadGraph(t, f.Room, kick)
		got, err := g.reverseTopologicalPowerOrder(g.mustIdx(t, kick, f.joinC))
		if err != nil {
			t.Fatal(err)
		}
		checkOrder(t, map[id.EventID]string{kick: "kick", f.joinC: "joinC"}, g.ids(got), []id.EventID{f.joinC, kick})
	})
}

// With equal power, the older event goes first; with equal power and
// timestamp, the smaller event ID.
func TestReverseTopologicalPowerOrderTieBreaks(t *testing.T) {
	f := newFixture(t, id.RoomV11)
	ts := testmx.StartTS + 1000
	var notes []id.EventID
	for i := range 4 {
		notes = append(notes, f.Add(testmx.Event{Sender: charlie, Type: noteType, StateKey: new(string(rune('a' + i))),
			Content: map[string]any{"n": i}, Prev: []id.EventID{f.base}, TS: ts}))
	}
	older := f.Add(testmx.Event{Sender: charlie, Type: noteType, StateKey: new("z"),
		Content: map[string]any{}, Prev: []id.EventID{f.base}, TS: ts - 1})
	g := loadGraph(t, f.Room, append(notes, older)...)
	got, err := g.reverseTopologicalPowerOrder(g.mustIdx(t, append(notes, older)...))
	if err != nil {
		t.Fatal(err)
	}
	want := append([]id.EventID{older}, notes...)
	slices.Sort(want[1:])
	names := map[id.EventID]string{older: "older"}
	for i, n := range notes {
		names[n] = string(rune('a' + i))
	}
	checkOrder(t, names, g.ids(got), want)
}

// Without a power levels auth event, the creator counts as 100 (v11) and
// everyone else as 0; with one, users[sender], then users_default; v12
// creators are infinite.
func TestSenderPower(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		pl := plContent(v, map[id.UserID]int{alice: 100, bob: 50})
		pl["users_default"] = 7
		p2 := f.State(f.base, alice, event.StatePowerLevels.Type, "", pl)
		noteC := f.State(p2, charlie, noteType, "c", map[string]any{})
		noteB := f.State(p2, bob, noteType, "b", map[string]any{})
		aliceJoin := f.Event(f.p1).AuthEvents
		g := loadGraph(t, f.Room, noteC, noteB, p2, f.p1)
		creator := int64(100)
		if v.PrivilegedRoomCreators() {
			creator = infinitePower
		}
		var join id.EventID
		for _, a := range aliceJoin {
			if f.Event(a).Type == event.StateMember.Type {
				join = a
			}
		}
		for _, c := range []struct {
			name string
			ev   id.EventID
			want int64
		}{
			{"creator without power levels", join, creator},
			{"creator", f.p1, creator},
			{"users entry", noteB, 50},
			{"users_default", noteC, 7},
			{"no power levels, not creator", f.joinB, 50}, // joinB cites P1
		} {
			if got := g.senderPower(g.mustIdx(t, c.ev)[0]); got != c.want {
				t.Errorf("%s: power %d, want %d", c.name, got, c.want)
			}
		}
	})
}

// Mainline ordering: events whose power levels ancestry meets the mainline
// further back come first; timestamps only break ties.
func TestMainlineOrder(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		plWith := func(redact int) map[string]any {
			pl := plContent(v, map[id.UserID]int{alice: 100, bob: 50})
			pl["redact"] = redact
			return pl
		}
		// Mainline: P3 -> P2 -> P1. P2side is a sibling of P2 citing P1.
		p2 := f.State(f.base, alice, event.StatePowerLevels.Type, "", plWith(51))
		p3 := f.State(p2, alice, event.StatePowerLevels.Type, "", plWith(52))
		p2side := f.State(f.base, alice, event.StatePowerLevels.Type, "", plWith(53))
		// Notes sent newest-mainline first, so that timestamps run against
		// the mainline order.
		under3 := f.State(p3, charlie, noteType, "3", map[string]any{})
		under2 := f.State(p2, charlie, noteType, "2", map[string]any{})
		under1 := f.State(f.base, charlie, noteType, "1", map[string]any{})
		underSide := f.State(p2side, charlie, noteType, "s", map[string]any{})
		under1b := f.State(f.base, charlie, noteType, "1b", map[string]any{})
		var aliceJoin id.EventID
		for _, a := range f.Event(f.p1).AuthEvents {
			if f.Event(a).Type == event.StateMember.Type {
				aliceJoin = a
			}
		}
		all := []id.EventID{under1b, under3, underSide, aliceJoin, under2, under1}
		g := loadGraph(t, f.Room, append(all, p3)...)
		got, err := g.mainlineOrder(g.mustIdx(t, all...), p3)
		if err != nil {
			t.Fatal(err)
		}
		names := map[id.EventID]string{under3: "under3", under2: "under2", under1: "under1", under1b: "under1b", underSide: "underSide", aliceJoin: "aliceJoin"}
		// aliceJoin cites no power levels: position infinity. under1 and
		// underSide (via P2side -> P1) are at P1's position 2, ordered by
		// timestamp with under1b; then under2 (1) and under3 (0).
		checkOrder(t, names, g.ids(got), []id.EventID{aliceJoin, under1, underSide, under1b, under2, under3})

		// Without resolved power levels every position is infinite and the
		// timestamps decide.
		got, err = g.mainlineOrder(g.mustIdx(t, all...), "")
		if err != nil {
			t.Fatal(err)
		}
		checkOrder(t, names, g.ids(got), []id.EventID{aliceJoin, under3, under2, under1, underSide, under1b})
	})
}

// The auth difference holds the events in some but not all full auth chains,
// including auth ancestors that are in no state set.
func TestAuthDifference(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		join := f.Member(f.base, dave, dave, event.MembershipJoin)
		leave := f.Member(join, dave, dave, event.MembershipLeave)
		note := f.State(f.base, charlie, noteType, "", map[string]any{})
		s1, s2 := f.After(leave), f.After(note)
		unconflicted, _ := partition([]StateMap{s1, s2})
		g := loadGraph(t, f.Room, collect(s1, s2)...)
		got := g.ids(g.authDifference([]StateMap{s1, s2}, unconflicted))
		want := []id.EventID{join, leave, note}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("auth difference = %v, want %v", got, want)
		}
	})
}

// The conflicted state subgraph is every event on an auth path between two
// conflicted events: bob's power levels P3 cites his join, which cites the
// join rules, which cite P1; charlie's note cites his join, which cites the
// join rules too. Alice's join and the create event are ancestors of P1 but
// lead to no conflicted event, so they are not in the subgraph.
func TestConflictedSubgraph(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		pl := plContent(v, map[id.UserID]int{alice: 100, bob: 50})
		pl["invite"] = 50
		p3 := f.State(f.base, bob, event.StatePowerLevels.Type, "", pl)
		note := f.State(f.base, charlie, noteType, "", map[string]any{})
		g := loadGraph(t, f.Room, p3, note)
		got := g.ids(g.conflictedSubgraph(g.mustIdx(t, p3, f.p1, note)))
		want := []id.EventID{p3, f.p1, note, f.joinB, f.joinC, f.jr}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			names := map[id.EventID]string{p3: "P3", f.p1: "P1", note: "note", f.joinB: "joinB", f.jr: "JR", f.joinC: "joinC", f.topic: "topic"}
			t.Errorf("subgraph = %v, want %v", nameAll(names, got), nameAll(names, want))
		}
	})
}

func nameAll(names map[id.EventID]string, l []id.EventID) []string {
	var s []string
	for _, e := range l {
		if n, ok := names[e]; ok {
			s = append(s, n)
		} else {
			s = append(s, string(e))
		}
	}
	return s
}

func collect(sets ...StateMap) []id.EventID {
	var out []id.EventID
	for _, s := range sets {
		for _, e := range s {
			out = append(out, e)
		}
	}
	return out
}

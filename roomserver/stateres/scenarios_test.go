package stateres

import (
	"maps"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/testmx"
)

func TestTrivialInputs(t *testing.T) {
	f := newFixture(t, id.RoomV11)
	s := f.After(f.base)
	if got := f.resolve(); len(got) != 0 {
		t.Errorf("no state sets: got %v, want empty", got)
	}
	if got := f.resolve(s); !maps.Equal(got, s) {
		t.Errorf("one state set: got %v, want %v", got, s)
	}
	if got := f.resolve(s, s, s); !maps.Equal(got, s) {
		t.Errorf("identical state sets: got %v, want %v", got, s)
	}
}

// Unconflicted state is copied into the result (step 5) even when it would
// not pass auth against the resolved state: here bob's note is in both sets,
// while one branch bans bob.
func TestUnconflictedStatePassesThrough(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		note := f.State(f.base, bob, noteType, "", map[string]any{"body": "bob's"})
		ban := f.Member(note, alice, bob, event.MembershipBan)
		topic := f.State(note, charlie, noteType, "charlie", map[string]any{"body": "x"})
		got := f.resolve(f.After(ban), f.After(topic))
		want := f.with(f.After(note), ban, topic)
		if !maps.Equal(got, want) {
			t.Errorf("got %v\nwant %v", got, want)
		}
		wantEvent(t, got, noteKey, note, "unconflicted")
		wantEvent(t, got, memberKey(bob), ban, "only conflicted key, ban is allowed")
	})
}

// A user is banned on one branch while promoted on the other. The promotion
// is sent by alice, who has more power than bob, so it comes first in the
// reverse topological power ordering even though its origin_server_ts is
// later; then charlie has bob's level and bob's ban no longer passes (5.6.2).
func TestBanVersusPromotion(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		ban := f.Member(f.base, bob, charlie, event.MembershipBan)
		promote := f.State(f.base, alice, event.StatePowerLevels.Type, "", plContent(v, map[id.UserID]int{alice: 100, bob: 50, charlie: 50}))
		if f.Event(ban).OriginServerTS >= f.Event(promote).OriginServerTS {
			t.Fatal("test setup: the ban must be older than the promotion")
		}
		got := f.resolve(f.After(ban), f.After(promote))
		wantEvent(t, got, plKey, promote, "promotion applies")
		wantEvent(t, got, memberKey(charlie), f.joinC, "ban by an equal-level user fails after the promotion")
	})
}

// The same race, but the promotion is sent by bob for dave (whom bob may
// raise to his own level) and the ban by alice: alice's ban goes first.
func TestBanByHigherPowerWins(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		promote := f.State(f.base, bob, event.StatePowerLevels.Type, "", plContent(v, map[id.UserID]int{alice: 100, bob: 50, charlie: 50}))
		ban := f.Member(f.base, alice, charlie, event.MembershipBan)
		got := f.resolve(f.After(ban), f.After(promote))
		wantEvent(t, got, memberKey(charlie), ban, "alice's ban is applied first and is allowed")
		wantEvent(t, got, plKey, promote, "bob's power level change is still allowed")
	})
}

// Concurrent topic changes under the same power levels have the same
// mainline position, so origin_server_ts decides: the later change is
// applied last and wins, whichever branch it is on.
func TestConcurrentTopicsTimestampDecides(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		for _, aliceFirst := range []bool{true, false} {
			f := newFixture(t, v)
			var ta, tb id.EventID
			if aliceFirst {
				ta = f.State(f.base, alice, event.StateTopic.Type, "", map[string]any{"topic": "A"})
				tb = f.State(f.base, bob, event.StateTopic.Type, "", map[string]any{"topic": "B"})
			} else {
				tb = f.State(f.base, bob, event.StateTopic.Type, "", map[string]any{"topic": "B"})
				ta = f.State(f.base, alice, event.StateTopic.Type, "", map[string]any{"topic": "A"})
			}
			later := tb
			if !aliceFirst {
				later = ta
			}
			got := f.resolve(f.After(ta), f.After(tb))
			wantEvent(t, got, topicKey, later, "later topic wins")
		}
	})
}

// Mainline ordering decides between topics: the topic sent under the newer
// power levels (mainline position 0) is applied after the one sent under the
// older power levels (position 1), even though the latter is newer.
func TestMainlineDecidesTopic(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		pl := plContent(v, map[id.UserID]int{alice: 100, bob: 50})
		pl["redact"] = 60
		p2 := f.State(f.base, alice, event.StatePowerLevels.Type, "", pl)
		ta := f.State(p2, bob, event.StateTopic.Type, "", map[string]any{"topic": "under P2"})
		tb := f.State(f.base, alice, event.StateTopic.Type, "", map[string]any{"topic": "under P1, newer"})
		got := f.resolve(f.After(ta), f.After(tb))
		wantEvent(t, got, plKey, p2, "P2 passes")
		wantEvent(t, got, topicKey, ta, "topic under the newest mainline power levels wins")
	})
}

// Join rules flip to invite on one branch while dave joins on the other: the
// join rules event is a power event and is applied first, so dave's join
// fails (5.3.7) and he is not in the room.
func TestJoinRulesFlip(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		join := f.Member(f.base, dave, dave, event.MembershipJoin)
		jr := f.State(f.base, alice, event.StateJoinRules.Type, "", map[string]any{"join_rule": "invite"})
		got := f.resolve(f.After(join), f.After(jr))
		wantEvent(t, got, jrKey, jr, "join rules change applies")
		wantAbsent(t, got, memberKey(dave), "dave's join fails under invite-only")

		// Control: without the flip, the join stands.
		other := f.State(f.base, alice, noteType, "", map[string]any{"body": "x"})
		got = f.resolve(f.After(join), f.After(other))
		wantEvent(t, got, memberKey(dave), join, "public room")
	})
}

// Power level demotion race: alice demotes bob on one branch while bob,
// still a moderator on his branch, changes the topic ("off topic") and kicks
// charlie. The demotion is applied first; bob's kick (a power event) and his
// topic (mainline ordered) are then re-authorised with bob at 0 and fail.
func TestDemotionRace(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		demote := f.State(f.base, alice, event.StatePowerLevels.Type, "", plContent(v, map[id.UserID]int{alice: 100, bob: 0}))
		offtopic := f.State(f.base, bob, event.StateTopic.Type, "", map[string]any{"topic": "off topic"})
		kick := f.Member(offtopic, bob, charlie, event.MembershipLeave)
		got := f.resolve(f.After(demote), f.After(kick))
		wantEvent(t, got, plKey, demote, "demotion applies")
		wantEvent(t, got, topicKey, f.topic, "bob's topic fails (8)")
		wantEvent(t, got, memberKey(charlie), f.joinC, "bob's kick fails (5.5.5)")
	})
}

// An event rejected on receipt because of the state at the event (not its
// auth chain) but present in another server's state set is handled as usual:
// it is authorised afresh and wins if it passes, and loses if the resolved
// state forbids it.
func TestRejectedEventOnBranch(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		topic := f.Add(testmx.Event{Sender: bob, Type: event.StateTopic.Type, StateKey: new(""),
			Content: map[string]any{"topic": "rejected here"}, Prev: []id.EventID{f.base}, Rejected: true})
		if !f.Event(topic).InternalMeta.Rejected {
			t.Fatal("test setup: topic must be marked rejected")
		}
		remote := f.with(f.After(f.base), topic) // a remote server's view of state
		note := f.State(f.base, charlie, noteType, "", map[string]any{"body": "x"})
		got := f.resolve(remote, f.After(note))
		wantEvent(t, got, topicKey, topic, "rejected flag ignored; bob may set the topic")

		ban := f.Member(f.base, alice, bob, event.MembershipBan)
		got = f.resolve(remote, f.After(ban))
		wantEvent(t, got, memberKey(bob), ban, "ban applies")
		wantEvent(t, got, topicKey, f.topic, "banned bob's topic fails")
	})
}

// Three branches at once: a demotion, a ban and a topic.
func TestThreeWayFork(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		ban := f.Member(f.base, bob, charlie, event.MembershipBan)
		demote := f.State(f.base, alice, event.StatePowerLevels.Type, "", plContent(v, map[id.UserID]int{alice: 100, bob: 0}))
		topic := f.State(f.base, charlie, noteType, "", map[string]any{"body": "x"})
		got := f.resolve(f.After(ban), f.After(demote), f.After(topic))
		wantEvent(t, got, plKey, demote, "demotion applies")
		wantEvent(t, got, memberKey(charlie), f.joinC, "bob's ban fails after his demotion")
		wantEvent(t, got, noteKey, topic, "charlie's note passes")
	})
}

// State resolution v2.1 starts the iterative auth checks from an empty state
// map (room version 12, step 2), so a power event is authorised against the
// state it was sent under, taken from its auth events. v2 starts from the
// unconflicted state map, whose newer power levels (bob at 0) make bob's
// older kick fail. The state sets come from two servers: one has accepted the
// kick and the demotion, the other only the demotion.
func TestV21EmptyInitialStateDiffers(t *testing.T) {
	results := map[id.RoomVersion]StateMap{}
	var kicks = map[id.RoomVersion]id.EventID{}
	var joins = map[id.RoomVersion]id.EventID{}
	for _, v := range []id.RoomVersion{id.RoomV11, id.RoomV12} {
		f := newFixture(t, v)
		kick := f.Member(f.base, bob, charlie, event.MembershipLeave)
		demote := f.State(f.base, alice, event.StatePowerLevels.Type, "", plContent(v, map[id.UserID]int{alice: 100, bob: 0}))
		results[v] = f.resolve(f.with(f.After(demote), kick), f.After(demote))
		kicks[v], joins[v] = kick, f.joinC
	}
	wantEvent(t, results[id.RoomV11], memberKey(charlie), joins[id.RoomV11], "v2: kick authorised against the unconflicted demotion fails")
	wantEvent(t, results[id.RoomV12], memberKey(charlie), kicks[id.RoomV12], "v2.1: kick authorised against its own auth events passes")
}

// In the iterative auth checks, state missing from the partial state is taken
// from the event's auth events only if they were not rejected. With v2.1's
// empty initial state, dave's membership (unconflicted, but rejected on
// receipt here) is not in the partial state, so his note falls back to his
// rejected join and fails; v2 starts with the unconflicted membership and
// lets the note pass.
func TestV21RejectedAuthEventExcluded(t *testing.T) {
	run := func(v id.RoomVersion, rejected bool) (StateMap, id.EventID, id.EventID) {
		f := newFixture(t, v)
		join := f.Add(testmx.Event{Sender: dave, Type: event.StateMember.Type, StateKey: new(dave.String()),
			Content: map[string]any{"membership": "join"}, Prev: []id.EventID{f.base}, Rejected: rejected})
		withDave := f.with(f.After(f.base), join)
		noteC := f.State(f.base, charlie, noteType, "", map[string]any{"body": "charlie"})
		noteD := f.Add(testmx.Event{Sender: dave, Type: noteType, StateKey: new(""),
			Content: map[string]any{"body": "dave"}, Prev: []id.EventID{join}, AuthState: withDave, Rejected: rejected})
		got := f.resolve(f.with(withDave, noteC), f.with(withDave, noteD))
		return got, noteC, noteD
	}
	got, _, noteD := run(id.RoomV11, true)
	wantEvent(t, got, noteKey, noteD, "v2: dave's join is in the initial (unconflicted) state")
	got, noteC, _ := run(id.RoomV12, true)
	wantEvent(t, got, noteKey, noteC, "v2.1: dave's only membership source is a rejected auth event")
	got, _, noteD = run(id.RoomV12, false)
	wantEvent(t, got, noteKey, noteD, "v2.1 control: a non-rejected auth event is used")
}

// Events of the auth difference are replayed even though no state set holds
// them. Alice promotes dave (P2) and dave then edits the power levels (P3);
// concurrently alice demotes bob (P4, older than P2). P2 is superseded on
// its branch but in the auth difference, so it is replayed after P4 and
// dave's P3 passes; without it P3 would be checked with dave at 0 and fail.
func TestAuthDifferenceReplaysSupersededPowerEvent(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		joinD := f.Member(f.base, dave, dave, event.MembershipJoin)
		p4 := f.State(joinD, alice, event.StatePowerLevels.Type, "", plContent(v, map[id.UserID]int{alice: 100, bob: 0}))
		p2 := f.State(joinD, alice, event.StatePowerLevels.Type, "", plContent(v, map[id.UserID]int{alice: 100, bob: 50, dave: 50}))
		pl := plContent(v, map[id.UserID]int{alice: 100, bob: 50, dave: 50})
		pl["invite"] = 50
		p3 := f.State(p2, dave, event.StatePowerLevels.Type, "", pl)
		got := f.resolve(f.After(p3), f.After(p4))
		wantEvent(t, got, plKey, p3, "P2, from the auth difference, lets dave's P3 pass")
	})
}

// The conflicted state subgraph (v2.1) keeps room version 12 from resurrecting
// an event that v2 rejects. Bob kicked charlie under P1 on one branch; on the
// other he demoted himself (P2) and left. Both servers accepted P2, so it is
// unconflicted, but it lies on the auth path from bob's leave to his join,
// both conflicted, so v2.1 replays it before the kick, which then fails. v2
// reaches the same result by starting from the unconflicted state. Without
// the subgraph, v2.1 would check the kick against its own auth event P1 and
// let it pass.
func TestV21ConflictedSubgraphReplaysUnconflictedPowerLevels(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		kick := f.Member(f.base, bob, charlie, event.MembershipLeave)
		p2 := f.State(f.base, bob, event.StatePowerLevels.Type, "", plContent(v, map[id.UserID]int{alice: 100, bob: 0}))
		leave := f.Member(p2, bob, bob, event.MembershipLeave)
		got := f.resolve(f.with(f.After(p2), kick), f.After(leave))
		wantEvent(t, got, plKey, p2, "unconflicted")
		wantEvent(t, got, memberKey(charlie), f.joinC, "bob's kick fails under his own demotion")
		wantEvent(t, got, memberKey(bob), leave, "bob's leave passes")
	})
}

// Room version 12 creators have infinite power, also in the reverse
// topological power ordering. Bob and alice both have 100 in v11 and edit
// the power levels concurrently: the tie goes to timestamps, so alice's later
// edit is applied last and wins. In v12 alice, the creator, sorts first, so
// bob's edit is applied last and wins.
func TestV12CreatorsOutrankEveryone(t *testing.T) {
	for _, c := range []struct {
		v        id.RoomVersion
		bobWins  bool
		scenario string
	}{
		{id.RoomV11, false, "equal power: the later edit (alice's) wins"},
		{id.RoomV12, true, "alice sorts first: bob's edit is applied last"},
	} {
		t.Run("v"+string(c.v), func(t *testing.T) {
			f := newFixture(t, c.v)
			equal := f.State(f.base, alice, event.StatePowerLevels.Type, "", plContent(c.v, map[id.UserID]int{alice: 100, bob: 100}))
			bobPL := plContent(c.v, map[id.UserID]int{alice: 100, bob: 100})
			bobPL["invite"] = 100
			byBob := f.State(equal, bob, event.StatePowerLevels.Type, "", bobPL)
			alicePL := plContent(c.v, map[id.UserID]int{alice: 100, bob: 100})
			alicePL["invite"] = 50
			byAlice := f.State(equal, alice, event.StatePowerLevels.Type, "", alicePL)
			got := f.resolve(f.After(byBob), f.After(byAlice))
			want := byAlice
			if c.bobWins {
				want = byBob
			}
			wantEvent(t, got, plKey, want, c.scenario)
		})
	}
}

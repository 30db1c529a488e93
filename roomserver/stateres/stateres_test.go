package stateres

import (
	"context"
	"errors"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"parley/internal/testmx"
)

func TestUnsupportedRoomVersion(t *testing.T) {
	f := newFixture(t, id.RoomV11)
	for _, v := range []id.RoomVersion{"1", "", "org.example.custom"} {
		_, err := Resolve(context.Background(), v, []StateMap{f.After(f.base)}, f.Fetch)
		if !errors.Is(err, ErrUnsupportedRoomVersion) {
			t.Errorf("version %q: err = %v, want ErrUnsupportedRoomVersion", v, err)
		}
	}
}

func TestFetchErrorIsReturned(t *testing.T) {
	f := newFixture(t, id.RoomV12)
	a := f.State(f.base, charlie, noteType, "", map[string]any{"n": 1})
	b := f.State(f.base, bob, noteType, "", map[string]any{"n": 2})
	boom := errors.New("database on fire")
	fetch := func(ctx context.Context, ids []id.EventID) ([]*pdu.PDU, error) { return nil, boom }
	if _, err := Resolve(context.Background(), f.Version, []StateMap{f.After(a), f.After(b)}, fetch); !errors.Is(err, boom) {
		t.Errorf("err = %v, want the fetch error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Resolve(ctx, f.Version, []StateMap{f.After(a), f.After(b)}, f.Fetch); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err = %v, want context.Canceled", err)
	}
}

// Each event is fetched at most once per resolution, and events are fetched
// in batches (one per level of the auth DAG), not one by one.
func TestFetchIsMemoised(t *testing.T) {
	f := newFixture(t, id.RoomV11)
	demote := f.State(f.base, alice, event.StatePowerLevels.Type, "", plContent(f.Version, map[id.UserID]int{alice: 100, bob: 0}))
	kick := f.Member(f.base, bob, charlie, event.MembershipLeave)
	seen := map[id.EventID]int{}
	calls := 0
	fetch := func(ctx context.Context, ids []id.EventID) ([]*pdu.PDU, error) {
		calls++
		for _, evID := range ids {
			seen[evID]++
		}
		return f.Fetch(ctx, ids)
	}
	if _, err := Resolve(context.Background(), f.Version, []StateMap{f.After(demote), f.After(kick)}, fetch); err != nil {
		t.Fatal(err)
	}
	for evID, n := range seen {
		if n > 1 {
			t.Errorf("%s fetched %d times", evID, n)
		}
	}
	if len(seen) > f.NumEvents() {
		t.Errorf("fetched %d distinct IDs, the room has %d events", len(seen), f.NumEvents())
	}
	if calls > 8 {
		t.Errorf("%d fetch calls for %d events: not batched", calls, len(seen))
	}
}

// A conflicted event the fetcher does not have takes no part in resolution
// (as in Synapse); the other conflicted events still resolve.
func TestMissingConflictedEventIsIgnored(t *testing.T) {
	f := newFixture(t, id.RoomV11)
	ta := f.State(f.base, alice, event.StateTopic.Type, "", map[string]any{"topic": "A"})
	tb := f.State(f.base, bob, event.StateTopic.Type, "", map[string]any{"topic": "B"})
	f.Remove(tb)
	got := f.resolve(f.After(ta), f.After(tb))
	wantEvent(t, got, topicKey, ta, "the missing topic is ignored")
}

// Restricted joins need the authorising server's key (auth rule 5.2.1); the
// Resolver passes GetKey through to the auth rules, and without it such a
// join fails the iterative auth checks.
func TestGetKeyIsUsedForRestrictedJoins(t *testing.T) {
	f := newFixture(t, id.RoomV11)
	jr := f.State(f.base, alice, event.StateJoinRules.Type, "", map[string]any{
		"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": "!other:a.test"}},
	})
	join := f.Add(testmx.Event{Sender: dave, Type: event.StateMember.Type, StateKey: new(dave.String()),
		Content:      map[string]any{"membership": "join", "join_authorised_via_users_server": alice.String()},
		Prev:         []id.EventID{jr},
		ExtraSigners: []string{alice.Homeserver()},
	})
	note := f.State(jr, charlie, noteType, "", map[string]any{})
	sets := []StateMap{f.After(join), f.After(note)}

	got, err := (&Resolver{Fetch: f.Fetch, GetKey: testmx.GetKey}).Resolve(context.Background(), f.Version, sets)
	if err != nil {
		t.Fatal(err)
	}
	wantEvent(t, got, memberKey(dave), join, "signature verified with GetKey")

	got, err = Resolve(context.Background(), f.Version, sets, f.Fetch)
	if err != nil {
		t.Fatal(err)
	}
	wantAbsent(t, got, memberKey(dave), "no GetKey: the authorising signature cannot be checked")
}

// Malformed state sets (a message event under a state key, an event of
// another room) neither panic nor win. (The foreign event drags its room's
// create event into the auth difference, which garbles the partial state as
// it would in Synapse; only the absence of a panic and of the foreign topic is
// asserted for it.)
func TestMalformedStateSets(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v id.RoomVersion) {
		f := newFixture(t, v)
		msg := f.Add(testmx.Event{Sender: bob, Type: "m.room.message", Content: map[string]any{"body": "hi"}, Prev: []id.EventID{f.base}})
		zoe := id.UserID("@zoe:z.test")
		other := testmx.NewRoom(t, v, zoe, nil)
		other.Member("", zoe, zoe, event.MembershipJoin)
		foreign := other.State("", zoe, event.StateTopic.Type, "", map[string]any{"topic": "other room"})
		fetch := func(ctx context.Context, ids []id.EventID) ([]*pdu.PDU, error) {
			a, _ := f.Fetch(ctx, ids)
			b, _ := other.Fetch(ctx, ids)
			return append(a, b...), nil
		}
		note := f.State(f.base, charlie, noteType, "", map[string]any{})
		for name, bogus := range map[string]id.EventID{"message event": msg, "foreign event": foreign} {
			s1 := f.After(note)
			s1[topicKey] = bogus
			got, err := Resolve(context.Background(), v, []StateMap{s1, f.After(f.base)}, fetch)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got[topicKey] == bogus {
				t.Errorf("%s won the topic", name)
			}
			if name == "message event" {
				wantEvent(t, got, topicKey, f.topic, name+" is skipped")
				wantEvent(t, got, noteKey, note, "other conflicts still resolve")
			}
		}
	})
}

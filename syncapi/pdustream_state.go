package syncapi

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/eventutil"
	"parley/storage"
)

// roomState computes the state section: the full state at the timeline start,
// or, for an incremental limited sync, what changed between since and the timeline start.
func (f *filler) roomState(ctx context.Context, room id.RoomID, tl []*storage.Event, since, hi int64, full, limited bool) ([]*storage.Event, error) {
	lazy := f.rf.lazyMembers
	if !full && !limited && !lazy {
		return nil, nil
	}
	var startGroup int64
	var err error
	if len(tl) > 0 {
		startGroup = tl[0].StateBefore
	} else if startGroup, err = f.stateAt(ctx, room, hi); err != nil {
		return nil, err
	}
	if full && !lazy {
		// The whole state: no ids needed.
		evs, err := f.p.store.StateEvents(ctx, startGroup)
		if err != nil {
			return nil, err
		}
		sort.Slice(evs, func(i, j int) bool { return evs[i].StreamPos < evs[j].StreamPos })
		return slices.DeleteFunc(evs, func(ev *storage.Event) bool { return !partAllows(f.rf.state, ev) }), nil
	}
	startIDs, err := f.p.store.StateIDs(ctx, startGroup)
	if err != nil {
		return nil, err
	}
	isMember := func(k storage.StateKeyTuple) bool { return k.Type == event.StateMember.Type }
	// With lazy-loaded members, a full state carries only the members of the
	// timeline's senders (and the user's own); an incremental one carries the
	// membership changes of the gap plus the members of the timeline's senders.
	var senders map[string]bool
	if lazy {
		senders = map[string]bool{}
		if full {
			senders[string(f.req.Device.UserID)] = true
		}
		for _, ev := range tl {
			senders[string(ev.Sender)] = true
		}
	}
	want := make([]id.EventID, 0, len(startIDs))
	switch {
	case full:
		for k, e := range startIDs {
			if !lazy || !isMember(k) || senders[k.StateKey] {
				want = append(want, e)
			}
		}
	case limited:
		sinceGroup, err := f.stateAt(ctx, room, since)
		if err != nil {
			return nil, err
		}
		sinceIDs, err := f.p.store.StateIDs(ctx, sinceGroup)
		if err != nil {
			return nil, err
		}
		for k, e := range startIDs {
			if sinceIDs[k] != e {
				want = append(want, e)
				if isMember(k) {
					delete(senders, k.StateKey) // already sent as part of the delta
				}
			}
		}
	}
	evs, err := f.p.store.GetEvents(ctx, want)
	if err != nil {
		return nil, err
	}
	if lazy && !full {
		// Incremental syncs add the members of the timeline's senders that the
		// client cannot have yet. Parley keeps no per-device record of what it
		// sent, so "has it" means: the sender has spoken since their member
		// event and before "since" (the client then got that member event
		// with it). include_redundant_members sends them all.
		extra, err := f.senderMembers(ctx, room, startIDs, senders, since)
		if err != nil {
			return nil, err
		}
		evs = append(evs, extra...)
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].StreamPos < evs[j].StreamPos })
	return slices.DeleteFunc(evs, func(ev *storage.Event) bool { return !partAllows(f.rf.state, ev) }), nil
}

// senderMembers returns the member events (in state ids) of senders the client may not have.
func (f *filler) senderMembers(ctx context.Context, room id.RoomID, ids map[storage.StateKeyTuple]id.EventID, senders map[string]bool, since int64) ([]*storage.Event, error) {
	want := make([]id.EventID, 0, len(senders))
	for u := range senders {
		if e, ok := ids[storage.StateKeyTuple{Type: event.StateMember.Type, StateKey: u}]; ok {
			want = append(want, e)
		}
	}
	evs, err := f.p.store.GetEvents(ctx, want)
	if err != nil || f.rf.includeRedundantLazy {
		return evs, err
	}
	return slices.DeleteFunc(evs, func(m *storage.Event) bool {
		if m.StreamPos > since {
			return false
		}
		spoke, e := f.p.store.SenderHasEvents(ctx, room, id.UserID(*m.StateKey), m.StreamPos, since)
		if e != nil {
			err = e
		}
		return spoke
	}), err
}

// summary computes m.heroes and the member counts. membersKnown says that
// known holds every member event too (no lazy loading, no timeline filter),
// so the memberships are read from it instead of storage.
// known, when set, holds the room's full state (and timeline) in stream
// order, from which the room's name and alias are read without a query.
func (f *filler) summary(ctx context.Context, room id.RoomID, known []*storage.Event, membersKnown bool) (*Summary, error) {
	var ms []storage.Membership
	if membersKnown {
		// The full state and timeline end at the response's position: the
		// last member event of each user is their membership now.
		at := map[id.UserID]int{}
		for _, ev := range known {
			if ev.Type != event.StateMember.Type || ev.StateKey == nil {
				continue
			}
			u := id.UserID(*ev.StateKey)
			if i, ok := at[u]; ok {
				ms[i].Membership = ev.Membership
				continue
			}
			at[u] = len(ms)
			ms = append(ms, storage.Membership{RoomID: room, UserID: u, Membership: ev.Membership})
		}
	} else {
		var err error
		if ms, err = f.p.store.RoomMemberships(ctx, room); err != nil {
			return nil, err
		}
	}
	joined, invited := 0, 0
	var heroes []id.UserID
	for _, m := range ms {
		switch m.Membership {
		case "join":
			joined++
		case "invite":
			invited++
		default:
			continue
		}
		if m.UserID != f.req.Device.UserID {
			heroes = append(heroes, m.UserID)
		}
	}
	// m.heroes are for clients to name rooms that have neither a name nor a canonical alias.
	names := map[string]bool{}
	if known != nil {
		for _, ev := range known {
			if ev.StateKey != nil && *ev.StateKey == "" && (ev.Type == event.StateRoomName.Type || ev.Type == event.StateCanonicalAlias.Type) {
				names[ev.Type] = gjson.GetBytes(ev.JSON, "content.name").Str != "" || gjson.GetBytes(ev.JSON, "content.alias").Str != ""
			}
		}
	} else {
		for _, t := range []string{event.StateRoomName.Type, event.StateCanonicalAlias.Type} {
			ev, err := f.p.store.CurrentStateEvent(ctx, room, t, "")
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return nil, err
			}
			names[t] = ev != nil && (gjson.GetBytes(ev.JSON, "content.name").Str != "" || gjson.GetBytes(ev.JSON, "content.alias").Str != "")
		}
	}
	named := names[event.StateRoomName.Type] || names[event.StateCanonicalAlias.Type]
	if named {
		heroes = nil
	}
	slices.Sort(heroes)
	if len(heroes) > 5 {
		heroes = heroes[:5]
	}
	return &Summary{Heroes: heroes, JoinedMemberCount: &joined, InvitedMemberCount: &invited}, nil
}

// strippedTypes are the state events shown to invited and knocking users.
var strippedTypes = []string{"m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar", "m.room.canonical_alias", "m.room.encryption", "m.room.topic"}

// stripped fills rooms.invite or rooms.knock with stripped state; it reports
// whether it added the room (an invite from an ignored user is left out).
func (f *filler) stripped(ctx context.Context, m storage.Membership) (bool, error) {
	mev, err := f.p.store.GetEvent(ctx, m.EventID)
	if err != nil {
		return false, err
	}
	if m.Membership == "invite" && f.ignored[mev.Sender] {
		return false, nil // invites from ignored users are not sent
	}
	ids, err := f.p.store.StateIDs(ctx, mev.StateAfter)
	if err != nil {
		return false, err
	}
	want := []id.EventID{}
	for _, t := range strippedTypes {
		if e, ok := ids[storage.StateKeyTuple{Type: t}]; ok {
			want = append(want, e)
		}
	}
	if mev.StateKey != nil && string(mev.Sender) != *mev.StateKey {
		// The inviter's own membership, so clients can show who invited them (as Synapse).
		if e, ok := ids[storage.StateKeyTuple{Type: "m.room.member", StateKey: string(mev.Sender)}]; ok {
			want = append(want, e)
		}
	}
	evs, err := f.p.store.GetEvents(ctx, want)
	if err != nil {
		return false, err
	}
	out := make([]json.RawMessage, 0, len(evs)+1)
	have := map[string]bool{}
	for _, ev := range evs {
		out = append(out, eventutil.StrippedState(nil, ev.JSON))
		have[ev.Type] = true
	}
	// An invite from another server carries the stripped state it sent
	// (invite_room_state); this server has no state of that room.
	gjson.GetBytes(mev.Unsigned, "invite_room_state").ForEach(func(_, st gjson.Result) bool {
		t := st.Get("type").Str
		if slices.Contains(strippedTypes, t) && st.Get("state_key").Str == "" && !have[t] {
			have[t] = true
			out = append(out, eventutil.StrippedState(nil, []byte(st.Raw)))
		}
		return true
	})
	if m.Membership == "invite" {
		// The invite event itself, in client format, so clients see who invited them.
		out = append(out, f.format([]*storage.Event{mev})[0])
		f.resp.Rooms.Invite[m.RoomID] = &InvitedRoom{InviteState: EventList{Events: out}}
	} else {
		out = append(out, eventutil.StrippedState(nil, mev.JSON))
		f.resp.Rooms.Knock[m.RoomID] = &KnockedRoom{KnockState: EventList{Events: out}}
	}
	return true, nil
}

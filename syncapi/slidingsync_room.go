package syncapi

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// maxHeroes is how many heroes a room result carries (as m.heroes in /v3/sync).
const maxHeroes = 5

// joinedRoom fills the result of a room the user is or was joined to:
// timeline, required_state, name, avatar, heroes and member counts. A room
// the user left (kicked, banned) is shown up to the membership change.
func (b *ssBuild) joinedRoom(ctx context.Context, j *ssJob, f *filler, r *ssRoom, st *roomSent) error {
	m := j.e.m
	room := m.RoomID
	store := b.s.d.PDU.store
	user := b.dev.UserID
	hi := b.to
	if m.Membership != "join" {
		hi = m.StreamPos
	}
	var lo int64
	if !j.initial && !j.expanded {
		lo = j.sent.pos
	}
	tl, limited, err := f.timeline(ctx, room, lo, hi, m.StreamPos)
	if err != nil {
		return err
	}
	if r.Timeline, err = f.formatTimeline(ctx, m, tl); err != nil {
		return err
	}
	r.Limited = &limited
	r.PrevBatch = formatPos(hi)
	if len(tl) > 0 {
		r.PrevBatch = formatPos(tl[0].StreamPos - 1)
	}
	// num_live: events since the previous response are live.
	live := 0
	if b.prev != nil {
		for _, ev := range tl {
			if ev.StreamPos > b.prev.token[StreamPDU] {
				live++
			}
		}
	}
	r.NumLive = &live

	group, err := f.stateAt(ctx, room, hi)
	if err != nil {
		return err
	}
	ids, err := store.StateIDs(ctx, group)
	if err != nil {
		return err
	}
	var old map[storage.StateKeyTuple]id.EventID
	if !j.initial {
		oldGroup, err := f.stateAt(ctx, room, j.sent.pos)
		if err != nil {
			return err
		}
		if old, err = store.StateIDs(ctx, oldGroup); err != nil {
			return err
		}
	}
	lazySent := map[id.UserID]bool{}
	if st.lazy != nil {
		lazySent = maps.Clone(st.lazy)
	}
	lazy := j.rc.lazy()
	want := map[id.EventID]bool{}
	for k, evID := range ids {
		if old != nil && old[k] == evID {
			continue // unchanged since the room was last sent
		}
		isMember := k.Type == event.StateMember.Type
		if j.rc.wants(k.Type, k.StateKey, user) {
			want[evID] = true
			if isMember {
				lazySent[id.UserID(k.StateKey)] = true
			}
			continue
		}
		// Lazy members: keep members the client already has current, unless
		// the timeline has a gap (then the client flushes its member cache).
		if lazy && isMember && old != nil && !limited && lazySent[id.UserID(k.StateKey)] {
			want[evID] = true
		}
	}
	if lazy {
		// $LAZY: the members who sent or are targets of timeline events.
		for _, ev := range tl {
			users := []id.UserID{ev.Sender}
			if ev.Type == event.StateMember.Type && ev.StateKey != nil {
				users = append(users, id.UserID(*ev.StateKey))
			}
			for _, u := range users {
				if lazySent[u] {
					continue
				}
				if evID, ok := ids[storage.StateKeyTuple{Type: event.StateMember.Type, StateKey: string(u)}]; ok {
					want[evID] = true
					lazySent[u] = true
				}
			}
		}
	}
	st.lazy = lazySent

	nameID := ids[storage.StateKeyTuple{Type: event.StateRoomName.Type}]
	avatarID := ids[storage.StateKeyTuple{Type: event.StateRoomAvatar.Type}]
	fetch := slices.Collect(maps.Keys(want))
	for _, e := range []id.EventID{nameID, avatarID} {
		if e != "" && !want[e] {
			fetch = append(fetch, e)
		}
	}
	evs, err := store.GetEvents(ctx, fetch)
	if err != nil {
		return err
	}
	sort.Slice(evs, func(a, c int) bool { return evs[a].StreamPos < evs[c].StreamPos })
	var stateEvs []*storage.Event
	var name, avatar *string
	for _, ev := range evs {
		if want[ev.EventID] {
			stateEvs = append(stateEvs, ev)
		}
		switch ev.EventID {
		case nameID:
			if v := gjson.GetBytes(ev.JSON, "content.name"); v.Type == gjson.String && v.Str != "" {
				name = &v.Str
			}
		case avatarID:
			if v := gjson.GetBytes(ev.JSON, "content.url"); v.Type == gjson.String && v.Str != "" {
				avatar = &v.Str
			}
		}
	}
	if len(stateEvs) > 0 {
		r.RequiredState = f.format(stateEvs)
	}
	r.Name = changedString(j.initial, st.name, name)
	r.Avatar = changedString(j.initial, st.avatar, avatar)
	st.name, st.avatar = name, avatar
	return b.members(ctx, j, ids, name == nil, r, st)
}

// changedString encodes a name or avatar for the response: set when
// initial or changed, JSON null when it was removed, omitted when unchanged.
func changedString(initial bool, old, cur *string) json.RawMessage {
	same := old == nil && cur == nil || old != nil && cur != nil && *old == *cur
	if !initial && same {
		return nil
	}
	if cur == nil {
		if initial {
			return nil
		}
		return json.RawMessage("null")
	}
	b, _ := json.Marshal(*cur)
	return b
}

// members fills joined_count, invited_count and (for rooms without a name)
// heroes: joined members first, then invited, then departed ones.
func (b *ssBuild) members(ctx context.Context, j *ssJob, ids map[storage.StateKeyTuple]id.EventID, needHeroes bool, r *ssRoom, st *roomSent) error {
	store := b.s.d.PDU.store
	ms, err := store.RoomMemberships(ctx, j.e.m.RoomID)
	if err != nil {
		return err
	}
	joined, invited := 0, 0
	groups := map[string][]id.UserID{}
	for _, m := range ms {
		switch m.Membership {
		case "join":
			joined++
		case "invite":
			invited++
		}
		if m.UserID != b.dev.UserID {
			groups[m.Membership] = append(groups[m.Membership], m.UserID)
		}
	}
	r.JoinedCount, r.InvitedCount = &joined, &invited
	if !needHeroes {
		st.heroes = ""
		return nil
	}
	var heroes []id.UserID
	for _, ms := range []string{"join", "invite", "leave", "ban"} {
		g := groups[ms]
		slices.Sort(g)
		heroes = append(heroes, g[:min(len(g), maxHeroes-len(heroes))]...)
	}
	keys := make([]string, len(heroes))
	for i, h := range heroes {
		keys[i] = string(h)
	}
	key := strings.Join(keys, ",")
	if !j.initial && key == st.heroes {
		return nil
	}
	st.heroes = key
	var evIDs []id.EventID
	for _, h := range heroes {
		if e, ok := ids[storage.StateKeyTuple{Type: event.StateMember.Type, StateKey: string(h)}]; ok {
			evIDs = append(evIDs, e)
		}
	}
	evs, err := store.GetEvents(ctx, evIDs)
	if err != nil {
		return err
	}
	profile := map[id.UserID]*storage.Event{}
	for _, ev := range evs {
		if ev.StateKey != nil {
			profile[id.UserID(*ev.StateKey)] = ev
		}
	}
	r.Heroes = []ssHero{}
	for _, h := range heroes {
		hero := ssHero{UserID: h}
		if ev := profile[h]; ev != nil {
			hero.DisplayName = gjson.GetBytes(ev.JSON, "content.displayname").Str
			hero.AvatarURL = gjson.GetBytes(ev.JSON, "content.avatar_url").Str
		}
		r.Heroes = append(r.Heroes, hero)
	}
	return nil
}

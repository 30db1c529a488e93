package syncapi

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/storage"
)

// bumpTypes are the event types that bump a room in the room list
// (MSC4186 bump_stamp).
var bumpTypes = []string{"m.room.create", "m.room.message", "m.room.encrypted", "m.sticker",
	"m.call.invite", "m.poll.start", "m.beacon_info"}

// ssResponse is the response body.
type ssResponse struct {
	Pos        string                  `json:"pos"`
	Lists      map[string]ssListResult `json:"lists"`
	Rooms      map[id.RoomID]*ssRoom   `json:"rooms"`
	Extensions map[string]any          `json:"extensions"`
}

// ssListResult is a SyncListResult.
type ssListResult struct {
	Count int `json:"count"`
}

// ssHero is a StrippedHero.
type ssHero struct {
	UserID      id.UserID `json:"user_id"`
	DisplayName string    `json:"displayname,omitempty"`
	AvatarURL   string    `json:"avatar_url,omitempty"`
}

// ssRoom is a RoomResult; omitted fields are unchanged (or unset when initial).
type ssRoom struct {
	Name             json.RawMessage `json:"name,omitempty"`
	Avatar           json.RawMessage `json:"avatar,omitempty"`
	Heroes           []ssHero        `json:"heroes,omitempty"`
	Initial          bool            `json:"initial,omitempty"`
	ExpandedTimeline bool            `json:"expanded_timeline,omitempty"`
	// UnstableExpandedTimeline is the same flag under the name Synapse's
	// unstable endpoint (and the clients written against it) use.
	UnstableExpandedTimeline bool              `json:"unstable_expanded_timeline,omitempty"`
	RequiredState            []json.RawMessage `json:"required_state,omitempty"`
	Timeline                 []json.RawMessage `json:"timeline,omitempty"`
	PrevBatch                string            `json:"prev_batch,omitempty"`
	Limited                  *bool             `json:"limited,omitempty"`
	NumLive                  *int              `json:"num_live,omitempty"`
	JoinedCount              *int              `json:"joined_count,omitempty"`
	InvitedCount             *int              `json:"invited_count,omitempty"`
	NotificationCount        int               `json:"notification_count"`
	HighlightCount           int               `json:"highlight_count"`
	BumpStamp                *int64            `json:"bump_stamp,omitempty"`
	IsDM                     *bool             `json:"is_dm,omitempty"`
	InviteState              []json.RawMessage `json:"invite_state,omitempty"`
	Membership               string            `json:"membership,omitempty"`
	Lists                    []string          `json:"lists,omitempty"`
}

// ssEntry is one room of the user's server-side room list.
type ssEntry struct {
	m    storage.Membership
	bump int64
	// last is the position of the newest event the user may see in the room.
	last int64
}

// ssBuild builds one response.
type ssBuild struct {
	s    *SlidingSync
	dev  *authn.Device
	req  *ssRequest
	prev *connState

	next    Token
	to      int64
	entries []*ssEntry
	byRoom  map[id.RoomID]*ssEntry
	dms     map[id.RoomID]bool
	// relevant maps rooms matched by a list range or subscription to their combined config.
	relevant map[id.RoomID]*roomConfig
	// listRooms and subRooms are the rooms of each list range, and the subscribed rooms.
	listRooms map[string][]id.RoomID
	subRooms  []id.RoomID
	// initialRooms are rooms sent with initial: true in this response.
	initialRooms map[id.RoomID]bool
	newState     *connState
}

// run builds the response and the connection state after it; found reports
// whether it holds anything that should end a long-poll.
func (b *ssBuild) run(ctx context.Context) (*ssResponse, *connState, bool, error) {
	s := b.s
	b.next = make(Token, len(s.d.Streams))
	for _, st := range s.d.Streams {
		pos, err := st.Position(ctx)
		if err != nil {
			return nil, nil, false, err
		}
		b.next[st.Name()] = pos
	}
	b.to = b.next[StreamPDU]
	b.newState = &connState{token: b.next, rooms: map[id.RoomID]*roomSent{}, counts: map[string]int{}}
	if b.prev != nil {
		maps.Copy(b.newState.rooms, b.prev.rooms)
	}
	subs := map[id.RoomID]*ssRoomConfig{}
	if b.prev != nil {
		maps.Copy(subs, b.prev.subs)
	}
	for _, room := range b.req.UnsubscribeRooms {
		delete(subs, room)
	}
	maps.Copy(subs, b.req.RoomSubscriptions)
	b.newState.subs = subs
	b.byRoom = map[id.RoomID]*ssEntry{}
	// A connection with neither lists nor subscriptions (Element X's
	// encryption loop: extensions only) needs no room list.
	if len(b.req.Lists) > 0 || len(subs) > 0 {
		if err := b.loadRoomList(ctx); err != nil {
			return nil, nil, false, err
		}
	}
	resp := &ssResponse{Lists: map[string]ssListResult{}, Rooms: map[id.RoomID]*ssRoom{}, Extensions: map[string]any{}}
	found := b.prev == nil
	if err := b.applyLists(ctx, resp); err != nil {
		return nil, nil, false, err
	}
	for name, c := range b.newState.counts {
		if b.prev == nil || b.prev.counts[name] != c {
			found = true
		}
	}
	for room, sub := range subs {
		e := b.byRoom[room]
		if e == nil {
			continue // not visible to the user: ignored (MSC4186 "Subscriptions")
		}
		b.relevantConfig(room).add(sub, "")
		b.subRooms = append(b.subRooms, room)
	}
	got, err := b.rooms(ctx, resp)
	if err != nil {
		return nil, nil, false, err
	}
	found = found || got
	got, err = b.extensions(ctx, resp)
	if err != nil {
		return nil, nil, false, err
	}
	return resp, b.newState, found || got, nil
}

func (b *ssBuild) relevantConfig(room id.RoomID) *roomConfig {
	if b.relevant == nil {
		b.relevant = map[id.RoomID]*roomConfig{}
	}
	rc := b.relevant[room]
	if rc == nil {
		rc = &roomConfig{}
		b.relevant[room] = rc
	}
	return rc
}

// loadRoomList computes the user's room list, newest activity first: rooms
// joined, invited, knocked, kicked or banned from, and rooms left that the
// connection has already sent.
func (b *ssBuild) loadRoomList(ctx context.Context) error {
	store := b.s.d.PDU.store
	user := b.dev.UserID
	ms, err := store.UserMemberships(ctx, user)
	if err != nil {
		return err
	}
	// Departures tell kicks from leaves; invites may be marked is_direct.
	var look []id.EventID
	for _, m := range ms {
		switch m.Membership {
		case "leave", "ban", "invite":
			look = append(look, m.EventID)
		}
	}
	kicked := map[id.EventID]bool{}
	directInvites := map[id.RoomID]bool{}
	if len(look) > 0 {
		evs, err := store.GetEvents(ctx, look)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if ev.Membership == "invite" {
				directInvites[ev.RoomID] = gjson.GetBytes(ev.JSON, "content.is_direct").Bool()
			} else if ev.Sender != user && !(ev.Membership == "ban" && neverJoined(ev)) {
				kicked[ev.EventID] = true
			}
		}
	}
	forgotten, err := store.ForgottenRooms(ctx, user)
	if err != nil {
		return err
	}
	var joined []id.RoomID
	for _, m := range ms {
		if m.StreamPos > b.to || forgotten[m.RoomID] {
			continue
		}
		switch m.Membership {
		case "join", "invite", "knock":
		case "leave", "ban":
			if !kicked[m.EventID] && (b.prev == nil || b.prev.rooms[m.RoomID] == nil) {
				continue
			}
		default:
			continue
		}
		e := &ssEntry{m: m, bump: m.StreamPos, last: m.StreamPos}
		b.entries = append(b.entries, e)
		b.byRoom[m.RoomID] = e
		if m.Membership == "join" {
			joined = append(joined, m.RoomID)
		}
	}
	act, err := b.activity(ctx, joined)
	if err != nil {
		return err
	}
	for _, r := range joined {
		e, a := b.byRoom[r], act[r]
		if a.Bump > 0 && a.Bump <= b.to {
			e.bump = a.Bump
		}
		e.last = min(max(a.Last, e.last), b.to)
	}
	sort.Slice(b.entries, func(i, j int) bool {
		if b.entries[i].bump != b.entries[j].bump {
			return b.entries[i].bump > b.entries[j].bump
		}
		return b.entries[i].m.RoomID < b.entries[j].m.RoomID
	})
	if err := b.loadDMs(ctx); err != nil {
		return err
	}
	for room, direct := range directInvites {
		if direct && b.byRoom[room] != nil && b.byRoom[room].m.Membership == "invite" {
			b.dms[room] = true
		}
	}
	return nil
}

// activity returns the newest activity of the joined rooms. A connection
// keeps it from response to response and re-reads only the rooms with
// events since (and newly joined ones), so an incremental request does not
// read every room of a large account.
func (b *ssBuild) activity(ctx context.Context, joined []id.RoomID) (map[id.RoomID]storage.RoomActivity, error) {
	store := b.s.d.Store
	if b.prev == nil || b.prev.activity == nil {
		act, err := store.JoinedRoomActivity(ctx, b.dev.UserID, bumpTypes)
		b.newState.activity = act
		return act, err
	}
	changed, err := b.s.d.PDU.store.RoomsChangedBetween(ctx, b.prev.token[StreamPDU], b.to)
	if err != nil {
		return nil, err
	}
	isChanged := make(map[id.RoomID]bool, len(changed))
	for _, r := range changed {
		isChanged[r] = true
	}
	act := make(map[id.RoomID]storage.RoomActivity, len(joined))
	var stale []id.RoomID
	for _, r := range joined {
		if a, ok := b.prev.activity[r]; ok && !isChanged[r] {
			act[r] = a
		} else {
			stale = append(stale, r)
		}
	}
	if len(stale) > 0 {
		fresh, err := store.RoomsActivity(ctx, stale, bumpTypes)
		if err != nil {
			return nil, err
		}
		maps.Copy(act, fresh)
	}
	b.newState.activity = act
	return act, nil
}

// neverJoined reports whether a ban came straight after an invite or knock
// (or on a user with no membership): MSC4186 leaves such rooms out.
func neverJoined(ban *storage.Event) bool {
	switch gjson.GetBytes(ban.Unsigned, "prev_content.membership").Str {
	case "", "invite", "knock":
		return true
	}
	return false
}

// loadDMs reads m.direct: the rooms in it are DMs (and, in loadRoomList,
// invites whose member event says is_direct).
func (b *ssBuild) loadDMs(ctx context.Context) error {
	b.dms = map[id.RoomID]bool{}
	raw, err := b.s.d.Inbox.store.GetAccountData(ctx, b.dev.UserID, "", "m.direct")
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	var direct map[id.UserID][]id.RoomID
	if json.Unmarshal(raw, &direct) != nil {
		return nil // malformed m.direct: no DMs
	}
	for _, rooms := range direct {
		for _, r := range rooms {
			b.dms[r] = true
		}
	}
	return nil
}

// applyLists filters the room list for each list, counts it and marks the
// rooms inside its ranges relevant.
func (b *ssBuild) applyLists(ctx context.Context, resp *ssResponse) error {
	facts, err := b.roomFacts(ctx)
	if err != nil {
		return err
	}
	b.listRooms = map[string][]id.RoomID{}
	for name, l := range b.req.Lists {
		var matched []*ssEntry
		for _, e := range b.entries {
			ok, err := b.filterAllows(ctx, l.Filters, e, facts)
			if err != nil {
				return err
			}
			if ok {
				matched = append(matched, e)
			}
		}
		resp.Lists[name] = ssListResult{Count: len(matched)}
		b.newState.counts[name] = len(matched)
		inList := func(i int) bool {
			if len(l.Ranges) == 0 {
				return true // no range: every matching room
			}
			return slices.ContainsFunc(l.Ranges, func(rg [2]int) bool { return i >= rg[0] && i <= rg[1] })
		}
		for i, e := range matched {
			if inList(i) {
				b.relevantConfig(e.m.RoomID).add(&l.ssRoomConfig, name)
				b.listRooms[name] = append(b.listRooms[name], e.m.RoomID)
			}
		}
	}
	return nil
}

// roomFacts holds what filters need to know about rooms: their create
// event's type and whether they are encrypted. It is loaded only when a list
// filters on them.
type roomFacts struct {
	roomType  map[id.RoomID]*string
	encrypted map[id.RoomID]bool
	spaces    map[id.RoomID]map[id.RoomID]bool
	tags      map[id.RoomID]map[string]bool
}

func (b *ssBuild) roomFacts(ctx context.Context) (*roomFacts, error) {
	f := &roomFacts{roomType: map[id.RoomID]*string{}, encrypted: map[id.RoomID]bool{},
		spaces: map[id.RoomID]map[id.RoomID]bool{}, tags: map[id.RoomID]map[string]bool{}}
	need := false
	for _, l := range b.req.Lists {
		if fl := l.Filters; fl != nil && (fl.IsEncrypted != nil || fl.RoomTypes != nil || fl.NotRoomTypes != nil) {
			need = true
		}
	}
	if !need || len(b.entries) == 0 {
		return f, nil
	}
	rooms := make([]id.RoomID, len(b.entries))
	for i, e := range b.entries {
		rooms[i] = e.m.RoomID
	}
	evs, err := b.s.d.Store.RoomsStateOfTypes(ctx, rooms, []string{"m.room.create", "m.room.encryption"})
	if err != nil {
		return nil, err
	}
	for _, ev := range evs {
		switch ev.Type {
		case "m.room.create":
			if t := gjson.GetBytes(ev.JSON, "content.type"); t.Type == gjson.String {
				s := t.Str
				f.roomType[ev.RoomID] = &s
			}
		case "m.room.encryption":
			f.encrypted[ev.RoomID] = true
		}
	}
	return f, nil
}

// spaceChildren returns the rooms a joined space lists as m.space.child
// (with a via), or nil when the user is not joined to it.
func (b *ssBuild) spaceChildren(ctx context.Context, f *roomFacts, space id.RoomID) (map[id.RoomID]bool, error) {
	if c, ok := f.spaces[space]; ok {
		return c, nil
	}
	var children map[id.RoomID]bool
	if e := b.byRoom[space]; e != nil && e.m.Membership == "join" {
		evs, err := b.s.d.PDU.store.CurrentState(ctx, space)
		if err != nil {
			return nil, err
		}
		children = map[id.RoomID]bool{}
		for _, ev := range evs {
			if ev.Type == event.StateSpaceChild.Type && ev.StateKey != nil && gjson.GetBytes(ev.JSON, "content.via").IsArray() {
				children[id.RoomID(*ev.StateKey)] = true
			}
		}
	}
	f.spaces[space] = children
	return children, nil
}

// roomTags returns the tags of room (from m.tag room account data).
func (b *ssBuild) roomTags(ctx context.Context, f *roomFacts, room id.RoomID) (map[string]bool, error) {
	if t, ok := f.tags[room]; ok {
		return t, nil
	}
	raw, err := b.s.d.Inbox.store.GetAccountData(ctx, b.dev.UserID, room, "m.tag")
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	tags := map[string]bool{}
	gjson.GetBytes(raw, "tags").ForEach(func(k, _ gjson.Result) bool { tags[k.Str] = true; return true })
	f.tags[room] = tags
	return tags, nil
}

func typeIn(list []*string, t *string) bool {
	return slices.ContainsFunc(list, func(x *string) bool {
		return x == nil && t == nil || x != nil && t != nil && *x == *t
	})
}

// filterAllows applies a list's filters to one room.
func (b *ssBuild) filterAllows(ctx context.Context, fl *ssFilters, e *ssEntry, f *roomFacts) (bool, error) {
	if fl == nil {
		return true, nil
	}
	room := e.m.RoomID
	if fl.IsDM != nil && b.dms[room] != *fl.IsDM {
		return false, nil
	}
	if inv := fl.invited(); inv != nil && (e.m.Membership == "invite") != *inv {
		return false, nil
	}
	if fl.IsEncrypted != nil && f.encrypted[room] != *fl.IsEncrypted {
		return false, nil
	}
	if fl.RoomTypes != nil && !typeIn(fl.RoomTypes, f.roomType[room]) {
		return false, nil
	}
	if typeIn(fl.NotRoomTypes, f.roomType[room]) {
		return false, nil
	}
	if fl.Spaces != nil {
		in := false
		for _, sp := range fl.Spaces {
			children, err := b.spaceChildren(ctx, f, sp)
			if err != nil {
				return false, err
			}
			if children[room] {
				in = true
				break
			}
		}
		if !in {
			return false, nil
		}
	}
	if fl.Tags != nil || fl.NotTags != nil {
		tags, err := b.roomTags(ctx, f, room)
		if err != nil {
			return false, err
		}
		if slices.ContainsFunc(fl.NotTags, func(t string) bool { return tags[t] }) {
			return false, nil
		}
		if fl.Tags != nil && !slices.ContainsFunc(fl.Tags, func(t string) bool { return tags[t] }) {
			return false, nil
		}
	}
	return true, nil
}

// ssJob is one room to send.
type ssJob struct {
	e       *ssEntry
	rc      *roomConfig
	sent    *roomSent
	initial bool
	// expanded resends the latest timeline_limit events (expanded_timeline).
	expanded bool
}

// rooms decides which relevant rooms to send (never sent on this
// connection, changed since, or asked for with a larger config) and builds them.
func (b *ssBuild) rooms(ctx context.Context, resp *ssResponse) (bool, error) {
	var jobs []*ssJob
	for room, rc := range b.relevant {
		e := b.byRoom[room]
		sent := b.newState.rooms[room]
		j := &ssJob{e: e, rc: rc, sent: sent}
		switch {
		case sent == nil || sent.membership != e.m.Membership:
			j.initial = true
		case e.m.Membership != "invite" && e.m.Membership != "knock" && rc.expandsState(sent):
			// More required_state: send the room again in full (initial).
			j.initial = true
		case e.m.Membership != "invite" && e.m.Membership != "knock" && rc.limit > sent.limit:
			// A longer timeline than the client has: the latest events again,
			// now (MSC4186 "Changes to timeline_limit").
			j.expanded = true
		case e.last > sent.pos:
		case b.dms[room] != sent.isDM:
		default:
			continue
		}
		jobs = append(jobs, j)
	}
	if len(jobs) == 0 {
		return false, nil
	}
	b.initialRooms = map[id.RoomID]bool{}
	for _, j := range jobs {
		if j.initial {
			b.initialRooms[j.e.m.RoomID] = true
		}
	}
	counts, err := b.unreadCounts(ctx, jobs)
	if err != nil {
		return false, err
	}
	results := make([]*ssRoom, len(jobs))
	sents := make([]*roomSent, len(jobs))
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		next     = make(chan int)
	)
	for w := 0; w < min(syncWorkers, len(jobs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r, st, err := b.room(ctx, jobs[i])
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
					continue
				}
				results[i], sents[i] = r, st
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return false, firstErr
	}
	for i, j := range jobs {
		room := j.e.m.RoomID
		r := results[i]
		c := counts[room]
		r.NotificationCount, r.HighlightCount = c.Notifications, c.Highlights
		r.Lists = j.rc.lists
		resp.Rooms[room] = r
		b.newState.rooms[room] = sents[i]
	}
	return true, nil
}

// unreadCounts returns the unthreaded (and main thread) unread counts of
// the joined rooms among jobs.
func (b *ssBuild) unreadCounts(ctx context.Context, jobs []*ssJob) (map[id.RoomID]storage.UnreadCount, error) {
	var rooms []id.RoomID
	for _, j := range jobs {
		if j.e.m.Membership == "join" {
			rooms = append(rooms, j.e.m.RoomID)
		}
	}
	out := map[id.RoomID]storage.UnreadCount{}
	if len(rooms) == 0 {
		return out, nil
	}
	cs, err := b.s.d.Inbox.store.UnreadCounts(ctx, b.dev.UserID, rooms)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if c.ThreadID != "" && c.ThreadID != "main" {
			continue
		}
		t := out[c.RoomID]
		t.Notifications += c.Notifications
		t.Highlights += c.Highlights
		out[c.RoomID] = t
	}
	return out, nil
}

// room builds one room result and what the connection then has of it.
func (b *ssBuild) room(ctx context.Context, j *ssJob) (*ssRoom, *roomSent, error) {
	m := j.e.m
	bump := j.e.bump
	r := &ssRoom{Initial: j.initial, ExpandedTimeline: j.expanded, UnstableExpandedTimeline: j.expanded, BumpStamp: &bump, Membership: m.Membership}
	st := &roomSent{pos: b.to, membership: m.Membership, isDM: b.dms[m.RoomID]}
	st.limit, st.stateCfgs = j.rc.sentConfigs(j.initial, j.sent)
	if j.sent != nil && !j.initial {
		st.name, st.avatar, st.heroes, st.lazy = j.sent.name, j.sent.avatar, j.sent.heroes, j.sent.lazy
	}
	if j.initial && b.dms[m.RoomID] || j.sent != nil && j.sent.isDM != b.dms[m.RoomID] {
		dm := b.dms[m.RoomID]
		r.IsDM = &dm
	}
	f := &filler{p: b.s.d.PDU, req: &Request{Device: b.dev}, rf: &roomFilter{limit: j.rc.limit}, now: time.Now().UnixMilli(), resp: NewResponse()}
	if m.Membership == "invite" || m.Membership == "knock" {
		if _, err := f.stripped(ctx, m); err != nil {
			return nil, nil, err
		}
		if m.Membership == "invite" {
			r.InviteState = f.resp.Rooms.Invite[m.RoomID].InviteState.Events
		} else {
			r.InviteState = f.resp.Rooms.Knock[m.RoomID].KnockState.Events
		}
		return r, st, nil
	}
	if err := b.joinedRoom(ctx, j, f, r, st); err != nil {
		return nil, nil, err
	}
	return r, st, nil
}

package roomserver

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// posVal is a state value from a stream position on.
type posVal struct {
	pos int64
	val string
}

// Visibility decides which events of one room a user may see, following the
// history visibility rules (client-server API, "History visibility"):
// the room's m.room.history_visibility and the user's membership at each event.
type Visibility struct {
	user    id.UserID
	current string
	members []posVal
	hist    []posVal
	// early returns the history visibility of events older than every
	// m.room.history_visibility event of the timeline (backfilled events),
	// loaded on first use; earlyVal caches it.
	early    func() string
	earlyVal string
}

// NewVisibility loads the membership and history-visibility history of a room for user.
func (s *Server) NewVisibility(ctx context.Context, user id.UserID, roomID id.RoomID) (*Visibility, error) {
	v := &Visibility{user: user, current: "leave"}
	mevs, err := s.store.StateHistory(ctx, roomID, event.StateMember.Type, string(user))
	if err != nil {
		return nil, err
	}
	for _, e := range mevs {
		v.members = append(v.members, posVal{e.StreamPos, e.Membership})
		v.current = e.Membership
	}
	hevs, err := s.store.StateHistory(ctx, roomID, event.StateHistoryVisibility.Type, "")
	if err != nil {
		return nil, err
	}
	for _, e := range hevs {
		hv := gjson.GetBytes(e.JSON, "content.history_visibility").Str
		if hv == "" {
			hv = "shared"
		}
		v.hist = append(v.hist, posVal{e.StreamPos, hv})
	}
	v.early = func() string { return s.earliestHistoryVisibility(ctx, roomID) }
	return v, nil
}

// earliestHistoryVisibility is the history visibility in the earliest local
// state of a room: the state before its first event with a positive stream
// position (what a resident server gave at the join, for a room joined over
// federation). It is "joined", the most restrictive, when that state cannot
// be read, and the spec's default "shared" when it has none.
func (s *Server) earliestHistoryVisibility(ctx context.Context, roomID id.RoomID) string {
	evs, err := s.store.RoomEvents(ctx, roomID, 0, 1<<62, 1, false)
	if err != nil || len(evs) == 0 {
		return "joined"
	}
	ids, err := s.store.StateIDs(ctx, evs[0].StateBefore)
	if err != nil {
		return "joined"
	}
	hvID, ok := ids[storage.StateKeyTuple{Type: event.StateHistoryVisibility.Type}]
	if !ok {
		return "shared"
	}
	ev, err := s.store.GetEvent(ctx, hvID)
	if err != nil {
		return "joined"
	}
	if hv := gjson.GetBytes(ev.JSON, "content.history_visibility").Str; hv != "" {
		return hv
	}
	return "shared"
}

// histAt returns the history visibility in effect before stream position pos.
func (v *Visibility) histAt(pos int64) string {
	if pos < 0 && (len(v.hist) == 0 || v.hist[0].pos >= pos) && v.early != nil {
		if v.earlyVal == "" {
			v.earlyVal = v.early()
		}
		return v.earlyVal
	}
	return before(v.hist, pos, "shared")
}

// MembershipAt is the user's membership after the events up to stream position pos.
func (v *Visibility) MembershipAt(pos int64) string { return before(v.members, pos+1, "leave") }

// Current is the user's current membership ("leave" when none).
func (v *Visibility) Current() string { return v.current }

// EverMember reports whether the user has ever had a membership event in the room.
func (v *Visibility) EverMember() bool { return len(v.members) > 0 }

// WorldReadable reports whether the room's current history visibility is world_readable.
func (v *Visibility) WorldReadable() bool {
	return len(v.hist) > 0 && v.hist[len(v.hist)-1].val == "world_readable"
}

// visRank orders history visibilities from the most restrictive.
var visRank = map[string]int{"joined": 1, "invited": 2, "shared": 3, "world_readable": 4}

// before returns the value in effect just before position pos.
func before(list []posVal, pos int64, def string) string {
	i := sort.Search(len(list), func(i int) bool { return list[i].pos >= pos })
	if i == 0 {
		return def
	}
	return list[i-1].val
}

// CanSee reports whether the user may see ev.
func (v *Visibility) CanSee(ev *storage.Event) bool {
	if ev.Type == event.StateMember.Type && ev.StateKey != nil && *ev.StateKey == string(v.user) {
		return true // users always see their own membership changes
	}
	hv := v.histAt(ev.StreamPos)
	if ev.Type == event.StateHistoryVisibility.Type && ev.StateKey != nil && *ev.StateKey == "" {
		// A change of visibility is judged by the more permissive of the old
		// and new settings, so that users see the change itself (as Synapse).
		if nv := gjson.GetBytes(ev.JSON, "content.history_visibility").Str; visRank[nv] > visRank[hv] {
			hv = nv
		}
	}
	if hv == "world_readable" {
		return true
	}
	m := before(v.members, ev.StreamPos, "leave")
	switch {
	case m == "join":
		return true
	case hv == "shared" && v.current == "join":
		return true
	case hv == "invited" && (m == "invite" || v.current == "join" && m == "invite"):
		return true
	}
	return false
}

// access returns the user's visibility over a room and the state group the
// user may read (current state while joined or world-readable, the state at
// their leave otherwise). It is ErrForbidden when the user was never in the room.
func (s *Server) access(ctx context.Context, user id.UserID, roomID id.RoomID) (*Visibility, *storage.Room, int64, error) {
	v, info, group, _, err := s.accessAt(ctx, user, roomID)
	return v, info, group, err
}

// accessAt is access that also returns the stream position of the user's
// leave when they may only read the room up to it (else 0).
func (s *Server) accessAt(ctx context.Context, user id.UserID, roomID id.RoomID) (*Visibility, *storage.Room, int64, int64, error) {
	info, err := s.store.GetRoom(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, 0, 0, fmt.Errorf("%w: you are not in the room", ErrForbidden)
	} else if err != nil {
		return nil, nil, 0, 0, err
	}
	v, err := s.NewVisibility(ctx, user, roomID)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	switch {
	case v.current == "join" || v.WorldReadable():
		return v, info, info.CurrentGroup, 0, nil
	case v.current == "leave" || v.current == "ban":
		if !v.EverMember() {
			break
		}
		// A forgotten room's history is gone for the user (until they rejoin).
		forgotten, err := s.store.ForgottenRooms(ctx, user)
		if err != nil {
			return nil, nil, 0, 0, err
		}
		if forgotten[roomID] {
			return nil, nil, 0, 0, fmt.Errorf("%w: you have forgotten the room", ErrForbidden)
		}
		ev, err := s.store.CurrentStateEvent(ctx, roomID, event.StateMember.Type, string(user))
		if err != nil {
			return nil, nil, 0, 0, err
		}
		return v, info, ev.StateAfter, ev.StreamPos, nil
	}
	return nil, nil, 0, 0, fmt.Errorf("%w: you are not a member of the room and were never one", ErrForbidden)
}

// RoomState returns the room state the user may see (GET /rooms/{id}/state).
func (s *Server) RoomState(ctx context.Context, user id.UserID, roomID id.RoomID) ([]*storage.Event, error) {
	_, _, group, err := s.access(ctx, user, roomID)
	if err != nil {
		return nil, err
	}
	return s.store.StateEvents(ctx, group)
}

// StateEvent returns one state event the user may see; ErrEventNotFound if unset.
func (s *Server) StateEvent(ctx context.Context, user id.UserID, roomID id.RoomID, evType, stateKey string) (*storage.Event, error) {
	_, info, group, err := s.access(ctx, user, roomID)
	if err != nil {
		return nil, err
	}
	if group == info.CurrentGroup {
		ev, err := s.store.CurrentStateEvent(ctx, roomID, evType, stateKey)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, ErrEventNotFound
		}
		return ev, err
	}
	ids, err := s.store.StateIDs(ctx, group)
	if err != nil {
		return nil, err
	}
	evID, ok := ids[storage.StateKeyTuple{Type: evType, StateKey: stateKey}]
	if !ok {
		return nil, ErrEventNotFound
	}
	return s.store.GetEvent(ctx, evID)
}

// Event returns an event the user may see (GET /rooms/{id}/event/{eventId}).
func (s *Server) Event(ctx context.Context, user id.UserID, roomID id.RoomID, eventID id.EventID) (*storage.Event, error) {
	v, _, _, err := s.access(ctx, user, roomID)
	if errors.Is(err, ErrForbidden) {
		return nil, ErrEventNotFound // as for events the user may not see
	} else if err != nil {
		return nil, err
	}
	ev, err := s.store.GetEvent(ctx, eventID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (ev.RoomID != roomID || ev.Rejected || ev.Outlier)) {
		return nil, ErrEventNotFound
	} else if err != nil {
		return nil, err
	}
	if !v.CanSee(ev) {
		return nil, ErrEventNotFound
	}
	room, err := s.store.GetRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	evs, err := s.hideErased(ctx, v, room.Version, []*storage.Event{ev})
	if err != nil {
		return nil, err
	}
	return evs[0], nil
}

// MembersRequest is GET /rooms/{id}/members.
type MembersRequest struct {
	User   id.UserID
	RoomID id.RoomID
	// At is a stream position (0: now).
	At            int64
	Membership    string
	NotMembership string
}

// Members returns the member events of a room the user may see.
func (s *Server) Members(ctx context.Context, req MembersRequest) ([]*storage.Event, error) {
	_, _, group, until, err := s.accessAt(ctx, req.User, req.RoomID)
	if err != nil {
		return nil, err
	}
	if req.At > 0 {
		at := req.At
		if until > 0 && at > until {
			at = until // never past what the user may see (their leave)
		}
		ev, err := s.store.LastEventAt(ctx, req.RoomID, at)
		if err == nil {
			group = ev.StateAfter
		} else if !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
	}
	evs, err := s.store.StateEvents(ctx, group)
	if err != nil {
		return nil, err
	}
	out := evs[:0]
	for _, ev := range evs {
		if ev.Type != event.StateMember.Type {
			continue
		}
		if req.Membership != "" && ev.Membership != req.Membership {
			continue
		}
		if req.NotMembership != "" && ev.Membership == req.NotMembership {
			continue
		}
		out = append(out, ev)
	}
	return out, nil
}

// JoinedMembers returns the joined member events of a room the user is joined to.
func (s *Server) JoinedMembers(ctx context.Context, user id.UserID, roomID id.RoomID) ([]*storage.Event, error) {
	v, _, _, err := s.access(ctx, user, roomID)
	if err != nil {
		return nil, err
	}
	if v.Current() != "join" {
		return nil, fmt.Errorf("%w: you are not joined to the room", ErrForbidden)
	}
	ms, err := s.store.RoomMemberships(ctx, roomID)
	if err != nil {
		return nil, err
	}
	ids := make([]id.EventID, 0, len(ms))
	for _, m := range ms {
		if m.Membership == "join" {
			ids = append(ids, m.EventID)
		}
	}
	return s.store.GetEvents(ctx, ids)
}

// JoinedRooms lists the rooms the user is joined to.
func (s *Server) JoinedRooms(ctx context.Context, user id.UserID) ([]id.RoomID, error) {
	ms, err := s.store.UserMemberships(ctx, user)
	if err != nil {
		return nil, err
	}
	out := []id.RoomID{}
	for _, m := range ms {
		if m.Membership == "join" {
			out = append(out, m.RoomID)
		}
	}
	return out, nil
}

// MessagesRequest is GET /rooms/{id}/messages with positions already decoded.
type MessagesRequest struct {
	User   id.UserID
	RoomID id.RoomID
	// From is the position to paginate from; HasFrom false means the newest
	// (backwards) or oldest (forwards) end.
	From    int64
	HasFrom bool
	// To bounds the pagination; HasTo false means no bound.
	To        int64
	HasTo     bool
	Backwards bool
	Limit     int
	// Keep filters events (nil keeps all).
	Keep func(*storage.Event) bool
}

// MessagesResponse is a page of events.
type MessagesResponse struct {
	Events []*storage.Event
	// Start is the position the page started from; End is where the next page
	// starts, valid when More is true.
	Start, End int64
	More       bool
}

// Messages pages through a room's events in stream order, keeping only events
// the user may see (events of erased users redacted where hideErased says).
func (s *Server) Messages(ctx context.Context, req MessagesRequest) (*MessagesResponse, error) {
	resp, v, info, err := s.messages(ctx, req)
	if err != nil {
		return nil, err
	}
	resp.Events, err = s.hideErased(ctx, v, info.Version, resp.Events)
	return resp, err
}

func (s *Server) messages(ctx context.Context, req MessagesRequest) (*MessagesResponse, *Visibility, *storage.Room, error) {
	v, info, _, err := s.access(ctx, req.User, req.RoomID)
	if err != nil {
		return nil, nil, nil, err
	}
	if req.Limit <= 0 {
		req.Limit = 10
	}
	req.Limit = min(req.Limit, 1000)
	from := req.From
	if !req.HasFrom {
		if req.Backwards {
			if from, err = s.store.MaxStreamPos(ctx); err != nil {
				return nil, nil, nil, err
			}
		} else {
			from = beforeAll
		}
	}
	resp := &MessagesResponse{Start: from, Events: []*storage.Event{}}
	cur := from
	batch := req.Limit + 1
	backfilled := !req.Backwards || req.HasTo
	for len(resp.Events) < req.Limit {
		var evs []*storage.Event
		if req.Backwards {
			lo := int64(beforeAll)
			if req.HasTo {
				lo = req.To
			}
			if cur <= lo {
				break
			}
			evs, err = s.store.RoomEvents(ctx, req.RoomID, lo, cur, batch, true)
		} else {
			hi := int64(1 << 62)
			if req.HasTo {
				hi = req.To
			}
			if cur >= hi {
				break
			}
			evs, err = s.store.RoomEvents(ctx, req.RoomID, cur, hi, batch, false)
		}
		if err != nil {
			return nil, nil, nil, err
		}
		for i, ev := range evs {
			if req.Backwards {
				cur = ev.StreamPos - 1
			} else {
				cur = ev.StreamPos
			}
			if v.CanSee(ev) && (req.Keep == nil || req.Keep(ev)) {
				resp.Events = append(resp.Events, ev)
				if len(resp.Events) == req.Limit {
					resp.More = i < len(evs)-1 || len(evs) == batch
					resp.End = cur
					return resp, v, info, nil
				}
			}
		}
		if len(evs) < batch {
			if backfilled {
				break
			}
			// Out of local history: ask other servers for older events once.
			backfilled = true
			n, err := s.maybeBackfill(ctx, info, req.Limit-len(resp.Events))
			if err != nil {
				return nil, nil, nil, err
			}
			if n == 0 {
				break
			}
		}
	}
	resp.End = cur
	return resp, v, info, nil
}

// beforeAll is a stream position below every event's, backfilled ones
// (negative positions) included.
const beforeAll = -(1 << 62)

// ContextResponse is GET /rooms/{id}/context/{eventId}.
type ContextResponse struct {
	Event      *storage.Event
	Before     []*storage.Event
	After      []*storage.Event
	Start, End int64
	MoreBefore bool
	MoreAfter  bool
	State      []*storage.Event
}

// Context returns an event with events before and after it.
func (s *Server) Context(ctx context.Context, user id.UserID, roomID id.RoomID, eventID id.EventID, limit int, keep func(*storage.Event) bool) (*ContextResponse, error) {
	if _, _, _, err := s.access(ctx, user, roomID); err != nil {
		return nil, err // 403 for users who may not read the room at all
	}
	ev, err := s.Event(ctx, user, roomID, eventID)
	if err != nil {
		return nil, err
	}
	limit = min(max(limit, 0), 100)
	nBefore := limit / 2
	nAfter := limit - nBefore
	resp := &ContextResponse{Event: ev, Before: []*storage.Event{}, After: []*storage.Event{}, Start: ev.StreamPos - 1, End: ev.StreamPos}
	if nBefore > 0 {
		b, err := s.Messages(ctx, MessagesRequest{User: user, RoomID: roomID, From: ev.StreamPos - 1, HasFrom: true, Backwards: true, Limit: nBefore, Keep: keep})
		if err != nil {
			return nil, err
		}
		resp.Before, resp.Start = b.Events, b.End
	}
	if nAfter > 0 {
		a, err := s.Messages(ctx, MessagesRequest{User: user, RoomID: roomID, From: ev.StreamPos, HasFrom: true, Limit: nAfter, Keep: keep})
		if err != nil {
			return nil, err
		}
		resp.After, resp.End = a.Events, a.End
	}
	stateAt := ev
	if len(resp.After) > 0 {
		stateAt = resp.After[len(resp.After)-1]
	}
	resp.State, err = s.store.StateEvents(ctx, stateAt.StateAfter)
	return resp, err
}

// Store exposes the room store for read-only consumers (sync).
func (s *Server) Store() storage.RoomStore { return s.store }

// MembersOf returns the member events of the senders of evs, as of the
// room's state at stream position at (lazy loading of members for /messages
// and /context; pass the pagination's newest position).
func (s *Server) MembersOf(ctx context.Context, roomID id.RoomID, evs []*storage.Event, at int64) ([]*storage.Event, error) {
	out := []*storage.Event{}
	if len(evs) == 0 {
		return out, nil
	}
	for _, ev := range evs {
		at = max(at, ev.StreamPos)
	}
	last, err := s.store.LastEventAt(ctx, roomID, at)
	if err != nil {
		return nil, err
	}
	ids, err := s.store.StateIDs(ctx, last.StateAfter)
	if err != nil {
		return nil, err
	}
	want := []id.EventID{}
	seen := map[id.UserID]bool{}
	for _, ev := range evs {
		if seen[ev.Sender] {
			continue
		}
		seen[ev.Sender] = true
		if e, ok := ids[storage.StateKeyTuple{Type: event.StateMember.Type, StateKey: string(ev.Sender)}]; ok {
			want = append(want, e)
		} else if cur, err := s.store.CurrentStateEvent(ctx, roomID, event.StateMember.Type, string(ev.Sender)); err == nil {
			// A sender with no membership at that point (the room's creator at
			// the create event): their current member event, as Synapse sends.
			want = append(want, cur.EventID)
		}
	}
	return s.store.GetEvents(ctx, want)
}

// RoomInitialSync is GET /rooms/{roomId}/initialSync (deprecated but still used).
type RoomInitialSync struct {
	// Membership is the user's membership, "" when they never had one.
	Membership string
	IsPublic   bool
	State      []*storage.Event
	Messages   *MessagesResponse
}

// InitialSync returns the state and latest events of a room the user may read.
func (s *Server) InitialSync(ctx context.Context, user id.UserID, roomID id.RoomID, limit int) (*RoomInitialSync, error) {
	v, info, group, until, err := s.accessAt(ctx, user, roomID)
	if err != nil {
		return nil, err
	}
	out := &RoomInitialSync{IsPublic: info.IsPublic}
	if v.EverMember() {
		out.Membership = v.Current()
	}
	if out.State, err = s.store.StateEvents(ctx, group); err != nil {
		return nil, err
	}
	req := MessagesRequest{User: user, RoomID: roomID, Backwards: true, Limit: limit}
	if until > 0 {
		req.From, req.HasFrom = until, true
	}
	if out.Messages, err = s.Messages(ctx, req); err != nil {
		return nil, err
	}
	return out, nil
}

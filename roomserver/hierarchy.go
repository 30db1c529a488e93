package roomserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// HierarchyRoom is one room of a space hierarchy.
type HierarchyRoom struct {
	*RoomSummary
	// Children are the room's m.space.child events with a non-empty via list
	// (only suggested ones when asked), in the spec's order.
	Children []*storage.Event
}

// HierarchyRequest is GET /rooms/{roomId}/hierarchy, decoded.
type HierarchyRequest struct {
	User          id.UserID
	RoomID        id.RoomID
	MaxDepth      int // < 0: unlimited
	SuggestedOnly bool
}

// Hierarchy walks a space depth first from req.RoomID and returns the rooms
// user may see (joined or invited, world_readable, public or knockable join
// rules, or restricted to a room they are in). Rooms below the root that this
// server is not in are described by the servers in the m.space.child via list
// (federation /hierarchy); rooms nobody can describe are skipped. The root
// must be known here and visible, else ErrForbidden.
func (s *Server) Hierarchy(ctx context.Context, req HierarchyRequest) ([]*HierarchyRoom, error) {
	type item struct {
		room  id.RoomID
		depth int
		via   []string
	}
	// A stack: a space's children are visited, in order, before the rest of
	// its siblings' subtrees, as the spec's depth-first pagination expects.
	stack := []item{{req.RoomID, 0, nil}}
	seen := map[id.RoomID]bool{req.RoomID: true}
	remote := s.newRemoteHierarchy()
	var out []*HierarchyRoom
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		hr, err := s.hierarchyRoom(ctx, req, remote, it.room, it.depth, it.via)
		if err != nil {
			return nil, err
		}
		if hr == nil {
			if it.depth == 0 {
				return nil, fmt.Errorf("%w: you may not see this room", ErrForbidden)
			}
			continue
		}
		if hr.RoomType != spaceRoomType {
			// Only spaces have children: m.space.child events in other
			// rooms are neither listed nor followed.
			hr.Children = nil
		}
		out = append(out, hr)
		if req.MaxDepth >= 0 && it.depth >= req.MaxDepth {
			continue
		}
		var next []item
		for _, c := range hr.Children {
			child := id.RoomID(*c.StateKey)
			if !seen[child] {
				seen[child] = true
				next = append(next, item{child, it.depth + 1, viaServers(c)})
			}
		}
		slices.Reverse(next)
		stack = append(stack, next...)
	}
	return out, nil
}

// spaceRoomType is the m.room.create type of a space.
const spaceRoomType = "m.space"

// hierarchyRoom returns one room of a hierarchy walk, or nil when the user
// may not see it or nothing is known about it. Rooms this server is not in
// (below the root) are asked for from the via servers of the m.space.child
// event that led here; a stale local copy is the fallback.
func (s *Server) hierarchyRoom(ctx context.Context, req HierarchyRequest, remote *remoteHierarchy, roomID id.RoomID, depth int, via []string) (*HierarchyRoom, error) {
	sum, err := s.Summary(ctx, roomID)
	if err != nil && !errors.Is(err, ErrRoomNotFound) {
		return nil, err
	}
	if depth > 0 && (sum == nil || !s.residentIn(sum)) {
		if hr := remote.room(ctx, roomID, via, req.SuggestedOnly); hr != nil {
			if ok, err := s.mayPeekRemote(ctx, req.User, hr); err != nil || !ok {
				return nil, err
			}
			return hr, nil
		}
	}
	if sum == nil {
		return nil, nil
	}
	if ok, err := s.mayPeek(ctx, req.User, sum); err != nil || !ok {
		return nil, err
	}
	hr := &HierarchyRoom{RoomSummary: sum, Children: spaceChildren(sum.State, req.SuggestedOnly)}
	sum.State = nil
	return hr, nil
}

// mayPeek reports whether user may see a room's summary in a hierarchy.
func (s *Server) mayPeek(ctx context.Context, user id.UserID, sum *RoomSummary) (bool, error) {
	for _, ev := range sum.State {
		if ev.Type == event.StateMember.Type && ev.StateKey != nil && *ev.StateKey == string(user) && ev.Membership == "ban" {
			return false, nil
		}
	}
	if sum.WorldReadable {
		return true, nil
	}
	var allow []gjson.Result
	for _, ev := range sum.State {
		if ev.Type == event.StateMember.Type && ev.StateKey != nil && *ev.StateKey == string(user) &&
			(ev.Membership == "join" || ev.Membership == "invite") {
			return true, nil
		}
		if ev.Type == event.StateJoinRules.Type {
			allow = gjson.GetBytes(ev.JSON, "content.allow").Array()
		}
	}
	switch sum.JoinRule {
	case "public", "knock":
		return true, nil
	case "restricted", "knock_restricted":
		if sum.JoinRule == "knock_restricted" {
			return true, nil
		}
		for _, a := range allow {
			if a.Get("type").Str != "m.room_membership" {
				continue
			}
			m, err := s.store.CurrentStateEvent(ctx, id.RoomID(a.Get("room_id").Str), event.StateMember.Type, string(user))
			if err == nil && m.Membership == "join" {
				return true, nil
			} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return false, err
			}
		}
	}
	return false, nil
}

// spaceChildren returns the valid m.space.child events of a state, ordered by
// content.order (when valid), then origin_server_ts, then room ID.
func spaceChildren(state []*storage.Event, suggestedOnly bool) []*storage.Event {
	var out []*storage.Event
	for _, ev := range state {
		if ev.Type != event.StateSpaceChild.Type || ev.StateKey == nil || len(*ev.StateKey) < 2 || (*ev.StateKey)[0] != '!' {
			continue
		}
		content := gjson.GetBytes(ev.JSON, "content")
		if via := content.Get("via"); !via.IsArray() || len(via.Array()) == 0 {
			continue
		}
		if suggestedOnly && !content.Get("suggested").Bool() {
			continue
		}
		out = append(out, ev)
	}
	order := func(ev *storage.Event) (string, bool) {
		o := gjson.GetBytes(ev.JSON, "content.order")
		if o.Type != gjson.String || len(o.Str) > 50 {
			return "", false
		}
		for i := 0; i < len(o.Str); i++ {
			if o.Str[i] < 0x20 || o.Str[i] > 0x7e {
				return "", false
			}
		}
		return o.Str, true
	}
	slices.SortStableFunc(out, func(a, b *storage.Event) int {
		oa, hasA := order(a)
		ob, hasB := order(b)
		switch {
		case hasA && !hasB:
			return -1
		case hasB && !hasA:
			return 1
		}
		return cmp.Or(cmp.Compare(oa, ob), cmp.Compare(a.OriginTS, b.OriginTS), cmp.Compare(*a.StateKey, *b.StateKey))
	})
	return out
}

package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// RemoteDirectory asks other servers about their rooms (federation
// /hierarchy). The Remote given to SetRemote may implement it; when it does
// not, space hierarchies show only rooms this server is in.
type RemoteDirectory interface {
	Hierarchy(ctx context.Context, server string, roomID id.RoomID, suggestedOnly bool) (*SpaceHierarchy, error)
}

// SpaceHierarchy is the federation /hierarchy answer for one space: the
// room, its children the requesting server may peek or join, and the IDs of
// those it may not.
type SpaceHierarchy struct {
	Room         *HierarchyRoom
	Children     []*HierarchyRoom
	Inaccessible []id.RoomID
}

const (
	// maxRemoteHierarchyLookups bounds the federation requests of one hierarchy walk.
	maxRemoteHierarchyLookups = 50
	// remoteHierarchyLookupTimeout bounds one request, remoteHierarchyBudget
	// all of a walk's: a slow server costs the client seconds, not minutes.
	remoteHierarchyLookupTimeout = 5 * time.Second
	remoteHierarchyBudget        = 15 * time.Second
)

// JSON is the room in the spec's SpaceHierarchyRoomsChunk shape (a room
// summary with children_state, room_version, encryption, allowed_room_ids).
func (hr *HierarchyRoom) JSON() map[string]any {
	room := hr.RoomSummary.FullJSON()
	children := make([]map[string]any, 0, len(hr.Children))
	for _, c := range hr.Children {
		children = append(children, map[string]any{
			"type": c.Type, "state_key": *c.StateKey, "sender": c.Sender, "origin_server_ts": c.OriginTS,
			"content": json.RawMessage(gjson.GetBytes(c.JSON, "content").Raw),
		})
	}
	room["children_state"] = children
	return room
}

// ParseHierarchyRoom reads a room summary another server sent (a
// SpaceHierarchyRoomsChunk); children_state is filtered and ordered as for
// local rooms. A summary without a valid room_id is ErrBadRequest.
func ParseHierarchyRoom(raw []byte, suggestedOnly bool) (*HierarchyRoom, error) {
	r := gjson.ParseBytes(raw)
	roomID := r.Get("room_id").Str
	if !r.IsObject() || len(roomID) < 2 || roomID[0] != '!' {
		return nil, fmt.Errorf("%w: room summary without a room_id", ErrBadRequest)
	}
	str := func(k string) string {
		if v := r.Get(k); v.Type == gjson.String {
			return v.Str
		}
		return ""
	}
	sum := &RoomSummary{
		RoomID: id.RoomID(roomID), Name: str("name"), Topic: str("topic"), CanonicalAlias: str("canonical_alias"),
		AvatarURL: str("avatar_url"), JoinRule: str("join_rule"), RoomType: str("room_type"),
		NumJoinedMembers: int(r.Get("num_joined_members").Int()), WorldReadable: r.Get("world_readable").Type == gjson.True,
		GuestCanJoin: r.Get("guest_can_join").Type == gjson.True, Version: id.RoomVersion(str("room_version")),
		Encryption: str("encryption"),
	}
	if sum.JoinRule == "" {
		sum.JoinRule = "public" // the summary's default
	}
	for _, a := range r.Get("allowed_room_ids").Array() {
		if a.Type == gjson.String && len(a.Str) > 1 && a.Str[0] == '!' {
			sum.AllowedRoomIDs = append(sum.AllowedRoomIDs, id.RoomID(a.Str))
		}
	}
	var state []*storage.Event
	for _, c := range r.Get("children_state").Array() {
		sk := c.Get("state_key")
		if c.Get("type").Str != event.StateSpaceChild.Type || sk.Type != gjson.String || !c.Get("content").IsObject() {
			continue
		}
		key := sk.Str
		state = append(state, &storage.Event{
			RoomID: sum.RoomID, Type: event.StateSpaceChild.Type, StateKey: &key,
			Sender: id.UserID(c.Get("sender").Str), OriginTS: c.Get("origin_server_ts").Int(), JSON: []byte(c.Raw),
		})
	}
	return &HierarchyRoom{RoomSummary: sum, Children: spaceChildren(state, suggestedOnly)}, nil
}

// residentIn reports whether a local user is joined to the room of this
// summary, i.e. whether this server's copy of the room is live.
func (s *Server) residentIn(sum *RoomSummary) bool {
	for _, ev := range sum.State {
		if ev.Type == event.StateMember.Type && ev.StateKey != nil && ev.Membership == "join" &&
			id.UserID(*ev.StateKey).Homeserver() == s.serverName {
			return true
		}
	}
	return false
}

// FederationHierarchy answers another server's /hierarchy request for a
// space this server is in: the room and the children origin could peek or
// join. Rooms unknown here are left out; ErrRoomNotFound when the space is
// unknown, this server is not in it, or origin may not see it.
func (s *Server) FederationHierarchy(ctx context.Context, origin string, roomID id.RoomID, suggestedOnly bool) (*SpaceHierarchy, error) {
	sum, err := s.Summary(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if !s.residentIn(sum) {
		return nil, ErrRoomNotFound
	}
	if ok, err := s.serverMayPeek(ctx, origin, sum); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%w: server %s may not see this room", ErrRoomNotFound, origin)
	}
	out := &SpaceHierarchy{Room: &HierarchyRoom{RoomSummary: sum, Children: spaceChildren(sum.State, suggestedOnly)},
		Children: []*HierarchyRoom{}, Inaccessible: []id.RoomID{}}
	for _, c := range out.Room.Children {
		child := id.RoomID(*c.StateKey)
		csum, err := s.Summary(ctx, child)
		if errors.Is(err, ErrRoomNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		if !s.residentIn(csum) {
			continue
		}
		ok, err := s.serverMayPeek(ctx, origin, csum)
		if err != nil {
			return nil, err
		}
		if !ok {
			out.Inaccessible = append(out.Inaccessible, child)
			continue
		}
		out.Children = append(out.Children, &HierarchyRoom{RoomSummary: csum, Children: spaceChildren(csum.State, suggestedOnly)})
		csum.State = nil
	}
	sum.State = nil
	return out, nil
}

// serverMayPeek reports whether users of server could peek or join a room:
// it is world_readable, public or knockable, the server has joined or
// invited members in it, or it is restricted to a room the server is in.
func (s *Server) serverMayPeek(ctx context.Context, server string, sum *RoomSummary) (bool, error) {
	switch {
	case sum.WorldReadable, sum.JoinRule == "public", sum.JoinRule == "knock", sum.JoinRule == "knock_restricted":
		return true, nil
	}
	for _, ev := range sum.State {
		if ev.Type == event.StateMember.Type && ev.StateKey != nil && id.UserID(*ev.StateKey).Homeserver() == server &&
			(ev.Membership == "join" || ev.Membership == "invite") {
			return true, nil
		}
	}
	if sum.JoinRule != "restricted" {
		return false, nil
	}
	for _, allowed := range sum.AllowedRoomIDs {
		ms, err := s.store.RoomMemberships(ctx, allowed)
		if err != nil {
			return false, err
		}
		for _, m := range ms {
			if m.Membership == "join" && m.UserID.Homeserver() == server {
				return true, nil
			}
		}
	}
	return false, nil
}

// remoteHierarchy fills in rooms of a hierarchy walk that this server is not
// in, from the servers named in the m.space.child events pointing at them.
type remoteHierarchy struct {
	s        *Server
	dir      RemoteDirectory
	lookups  int
	deadline time.Time
	// known are summaries other servers gave as children of a space, used
	// when the room itself cannot be asked for.
	known        map[id.RoomID]*HierarchyRoom
	inaccessible map[id.RoomID]bool
}

func (s *Server) newRemoteHierarchy() *remoteHierarchy {
	dir, _ := s.remote.(RemoteDirectory)
	if dir == nil {
		return nil
	}
	return &remoteHierarchy{s: s, dir: dir, deadline: time.Now().Add(remoteHierarchyBudget),
		known: map[id.RoomID]*HierarchyRoom{}, inaccessible: map[id.RoomID]bool{}}
}

// room returns a remote room's summary and children, asking the via servers
// in turn; nil when none answers and no other server described it.
func (rh *remoteHierarchy) room(ctx context.Context, roomID id.RoomID, via []string, suggestedOnly bool) *HierarchyRoom {
	if rh == nil || rh.inaccessible[roomID] {
		return nil
	}
	for _, server := range via {
		if server == rh.s.serverName || rh.lookups >= maxRemoteHierarchyLookups || time.Now().After(rh.deadline) {
			continue
		}
		rh.lookups++
		until := time.Now().Add(remoteHierarchyLookupTimeout)
		if rh.deadline.Before(until) {
			until = rh.deadline
		}
		lctx, cancel := context.WithDeadline(ctx, until)
		resp, err := rh.dir.Hierarchy(lctx, server, roomID, suggestedOnly)
		cancel()
		if err != nil || resp.Room == nil || resp.Room.RoomID != roomID {
			rh.s.log.Debug("remote hierarchy lookup failed", zap.String("server", server), zap.String("room_id", string(roomID)), zap.Error(err))
			continue
		}
		for _, c := range resp.Children {
			if _, ok := rh.known[c.RoomID]; !ok {
				rh.known[c.RoomID] = c
			}
		}
		for _, r := range resp.Inaccessible {
			rh.inaccessible[r] = true
		}
		return resp.Room
	}
	return rh.known[roomID]
}

// mayPeekRemote reports whether user may see a room described by another
// server: world_readable, public or knockable, a member here (joined or
// invited), or restricted to a room the user is joined to.
func (s *Server) mayPeekRemote(ctx context.Context, user id.UserID, hr *HierarchyRoom) (bool, error) {
	m, err := s.store.CurrentStateEvent(ctx, hr.RoomID, event.StateMember.Type, string(user))
	if err == nil {
		switch m.Membership {
		case "ban":
			return false, nil
		case "join", "invite":
			return true, nil
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return false, err
	}
	switch {
	case publiclyVisible(hr.RoomSummary):
		return true, nil
	case hr.JoinRule != "restricted":
		return false, nil
	}
	for _, allowed := range hr.AllowedRoomIDs {
		m, err := s.store.CurrentStateEvent(ctx, allowed, event.StateMember.Type, string(user))
		if err == nil && m.Membership == "join" {
			return true, nil
		} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return false, err
		}
	}
	return false, nil
}

// viaServers returns the via list of an m.space.child event.
func viaServers(ev *storage.Event) []string {
	var out []string
	for _, v := range gjson.GetBytes(ev.JSON, "content.via").Array() {
		if v.Type == gjson.String && v.Str != "" && !slices.Contains(out, v.Str) {
			out = append(out, v.Str)
		}
	}
	return out
}

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

// RoomSummary is a room's public description, from its current state (the
// PublishedRoom / room hierarchy chunk shape).
type RoomSummary struct {
	RoomID           id.RoomID
	Name             string
	Topic            string
	CanonicalAlias   string
	AvatarURL        string
	JoinRule         string
	RoomType         string
	NumJoinedMembers int
	WorldReadable    bool
	GuestCanJoin     bool
	// Version, Encryption (the m.room.encryption algorithm) and AllowedRoomIDs
	// (of restricted join rules) complete the room hierarchy's RoomSummary.
	Version        id.RoomVersion
	Encryption     string
	AllowedRoomIDs []id.RoomID
	// State is the room's current state (for callers that need more, such as m.space.child events).
	State []*storage.Event
}

// Summary returns a room's summary; ErrRoomNotFound when the room is unknown.
func (s *Server) Summary(ctx context.Context, roomID id.RoomID) (*RoomSummary, error) {
	room, err := s.store.GetRoom(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrRoomNotFound
	} else if err != nil {
		return nil, err
	}
	state, err := s.store.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	sum := &RoomSummary{RoomID: roomID, JoinRule: "invite", State: state, Version: room.Version}
	for _, ev := range state {
		if ev.StateKey == nil {
			continue
		}
		content := gjson.GetBytes(ev.JSON, "content")
		str := func(k string) string {
			if v := content.Get(gjsonKey(k)); v.Type == gjson.String {
				return v.Str
			}
			return ""
		}
		switch {
		case ev.Type == event.StateMember.Type:
			if ev.Membership == "join" {
				sum.NumJoinedMembers++
			}
		case *ev.StateKey != "":
		case ev.Type == event.StateRoomName.Type:
			sum.Name = str("name")
		case ev.Type == event.StateTopic.Type:
			sum.Topic = str("topic")
		case ev.Type == event.StateCanonicalAlias.Type:
			sum.CanonicalAlias = str("alias")
		case ev.Type == event.StateRoomAvatar.Type:
			sum.AvatarURL = str("url")
		case ev.Type == event.StateJoinRules.Type:
			if jr := str("join_rule"); jr != "" {
				sum.JoinRule = jr
			}
			if sum.JoinRule == "restricted" || sum.JoinRule == "knock_restricted" {
				for _, a := range content.Get("allow").Array() {
					if a.Get("type").Str == "m.room_membership" && a.Get("room_id").Type == gjson.String {
						sum.AllowedRoomIDs = append(sum.AllowedRoomIDs, id.RoomID(a.Get("room_id").Str))
					}
				}
			}
		case ev.Type == event.StateEncryption.Type:
			sum.Encryption = str("algorithm")
		case ev.Type == event.StateCreate.Type:
			sum.RoomType = str("type")
		case ev.Type == event.StateHistoryVisibility.Type:
			sum.WorldReadable = str("history_visibility") == "world_readable"
		case ev.Type == event.StateGuestAccess.Type:
			sum.GuestCanJoin = str("guest_access") == "can_join"
		}
	}
	return sum, nil
}

// gjsonKey escapes a key for a gjson path.
func gjsonKey(k string) string {
	out := make([]byte, 0, len(k))
	for i := 0; i < len(k); i++ {
		switch k[i] {
		case '.', '*', '?', '|', '#', '@', '\\':
			out = append(out, '\\')
		}
		out = append(out, k[i])
	}
	return string(out)
}

// PublicRooms returns the summaries of the rooms published in the room
// directory, most joined members first (then by room ID).
func (s *Server) PublicRooms(ctx context.Context) ([]*RoomSummary, error) {
	ids, err := s.store.PublicRoomIDs(ctx)
	if err != nil {
		return nil, err
	}
	return s.summaries(ctx, ids)
}

// summaries returns the directory summaries of rooms, most joined members
// first (then by room ID); rooms this server does not know are left out.
func (s *Server) summaries(ctx context.Context, ids []id.RoomID) ([]*RoomSummary, error) {
	out := make([]*RoomSummary, 0, len(ids))
	for _, roomID := range ids {
		sum, err := s.Summary(ctx, roomID)
		if errors.Is(err, ErrRoomNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		sum.State = nil
		out = append(out, sum)
	}
	slices.SortFunc(out, func(a, b *RoomSummary) int {
		return cmp.Or(cmp.Compare(b.NumJoinedMembers, a.NumJoinedMembers), cmp.Compare(a.RoomID, b.RoomID))
	})
	return out, nil
}

// RoomVisibility returns whether a room is published in the room directory.
func (s *Server) RoomVisibility(ctx context.Context, roomID id.RoomID) (bool, error) {
	room, err := s.store.GetRoom(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, ErrRoomNotFound
	} else if err != nil {
		return false, err
	}
	return room.IsPublic, nil
}

// SetRoomVisibility publishes or unpublishes a room. Server admins and joined
// members allowed to send m.room.canonical_alias may do so.
func (s *Server) SetRoomVisibility(ctx context.Context, user id.UserID, isAdmin bool, roomID id.RoomID, public bool) error {
	if _, err := s.RoomVisibility(ctx, roomID); err != nil {
		return err
	}
	if !isAdmin {
		ok, err := s.canSendState(ctx, roomID, user, event.StateCanonicalAlias.Type)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: you may not change this room's visibility in the room directory", ErrForbidden)
		}
	}
	return s.store.SetRoomPublic(ctx, roomID, public)
}

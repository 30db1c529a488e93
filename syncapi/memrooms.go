package syncapi

import (
	"context"
	"sort"
	"sync"

	"maunium.net/go/mautrix/id"
)

// MemoryRooms is an in-memory Membership: a membership set changed with SetJoined. It stands
// in for the roomserver where none is wired (and in tests of the inbox alone).
type MemoryRooms struct {
	// mu guards members.
	mu      sync.Mutex
	members map[id.RoomID]map[id.UserID]struct{}
}

// NewMemoryRooms returns an empty MemoryRooms.
func NewMemoryRooms() *MemoryRooms {
	return &MemoryRooms{members: map[id.RoomID]map[id.UserID]struct{}{}}
}

// SetJoined records whether user is joined to room.
func (m *MemoryRooms) SetJoined(room id.RoomID, user id.UserID, joined bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	set := m.members[room]
	if joined {
		if set == nil {
			set = map[id.UserID]struct{}{}
			m.members[room] = set
		}
		set[user] = struct{}{}
		return
	}
	delete(set, user)
}

// JoinedRooms implements Membership.
func (m *MemoryRooms) JoinedRooms(_ context.Context, user id.UserID) ([]id.RoomID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []id.RoomID
	for room, set := range m.members {
		if _, ok := set[user]; ok {
			out = append(out, room)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// IsJoined implements Membership.
func (m *MemoryRooms) IsJoined(_ context.Context, room id.RoomID, user id.UserID) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.members[room][user]
	return ok, nil
}

// JoinedMembers implements Membership.
func (m *MemoryRooms) JoinedMembers(_ context.Context, room id.RoomID) ([]id.UserID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]id.UserID, 0, len(m.members[room]))
	for u := range m.members[room] {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

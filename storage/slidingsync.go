package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// SlidingSyncStore holds the batched room reads of sliding sync (MSC4186),
// which looks at every room of a user at once to sort and filter its room list.
type SlidingSyncStore interface {
	// JoinedRoomActivity returns, for each room user is joined to, the
	// stream position of its newest accepted event (last) and of its newest
	// accepted event whose type is one of bumpTypes (bump; 0 if none).
	JoinedRoomActivity(ctx context.Context, user id.UserID, bumpTypes []string) (map[id.RoomID]RoomActivity, error)
	// RoomsActivity is JoinedRoomActivity for the given rooms.
	RoomsActivity(ctx context.Context, rooms []id.RoomID, bumpTypes []string) (map[id.RoomID]RoomActivity, error)
	// RoomsStateOfTypes returns the current state events with an empty state
	// key and one of types, of every room in rooms.
	RoomsStateOfTypes(ctx context.Context, rooms []id.RoomID, types []string) ([]*Event, error)
}

// RoomActivity is the newest activity in a room, as stream positions.
type RoomActivity struct {
	Last int64
	Bump int64
}

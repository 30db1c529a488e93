package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// SlidingSyncStore holds the batched room reads of sliding sync (MSC4186),
// which looks at every room of a user at once to sort and filter its room list.
type SlidingSyncStore interface {
	// BumpStamps returns, for each of rooms that has one, the stream
	// position of its newest accepted event whose type is one of types (of
	// any type when types is empty).
	BumpStamps(ctx context.Context, rooms []id.RoomID, types []string) (map[id.RoomID]int64, error)
	// RoomsStateOfTypes returns the current state events with an empty state
	// key and one of types, of every room in rooms.
	RoomsStateOfTypes(ctx context.Context, rooms []id.RoomID, types []string) ([]*Event, error)
}

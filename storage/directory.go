package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// DirectoryStore lists the rooms published in the room directory.
type DirectoryStore interface {
	// PublicRoomIDs returns the published rooms (rooms.is_public), in room ID order.
	PublicRoomIDs(ctx context.Context) ([]id.RoomID, error)
}

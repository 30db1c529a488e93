package sqlstore

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// PublicRoomIDs implements storage.DirectoryStore.
func (s *Store) PublicRoomIDs(ctx context.Context) ([]id.RoomID, error) {
	return queryColumn[id.RoomID](ctx, s.db.r, `SELECT room_id FROM rooms WHERE is_public ORDER BY room_id`)
}

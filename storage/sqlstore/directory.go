package sqlstore

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// PublicRoomIDs implements storage.DirectoryStore.
func (s *Store) PublicRoomIDs(ctx context.Context) ([]id.RoomID, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT room_id FROM rooms WHERE is_public ORDER BY room_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []id.RoomID
	for rows.Next() {
		var r id.RoomID
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

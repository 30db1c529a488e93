package sqlstore

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// SharedRoomUsers returns every user joined to a room user is joined to
// (device-list tracking; keyserver.RoomMembership).
func (s *Store) SharedRoomUsers(ctx context.Context, user id.UserID) (map[id.UserID]struct{}, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT DISTINCT b.state_key FROM current_state a
		JOIN current_state b ON b.room_id = a.room_id AND b.type = 'm.room.member' AND b.membership = 'join'
		WHERE a.type = 'm.room.member' AND a.state_key = $1 AND a.membership = 'join'`, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[id.UserID]struct{}{}
	for rows.Next() {
		var u id.UserID
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out[u] = struct{}{}
	}
	return out, rows.Err()
}

// RoomJoinedUsers returns the users joined to room (keyserver.RoomMembership).
func (s *Store) RoomJoinedUsers(ctx context.Context, room id.RoomID) ([]id.UserID, error) {
	return queryColumn[id.UserID](ctx, s.db.r, `SELECT state_key FROM current_state WHERE room_id = $1 AND type = 'm.room.member' AND membership = 'join'`, room)
}

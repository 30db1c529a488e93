package sqlstore

import (
	"context"
	"database/sql"
	"strconv"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// chunkRooms calls fn with slices of at most 400 rooms, keeping every query
// below SQLite's and PostgreSQL's placeholder limits.
func chunkRooms(rooms []id.RoomID, fn func([]id.RoomID) error) error {
	for start := 0; start < len(rooms); start += 400 {
		if err := fn(rooms[start:min(start+400, len(rooms))]); err != nil {
			return err
		}
	}
	return nil
}

func roomTypeArgs(rooms []id.RoomID, types []string) []any {
	args := make([]any, 0, len(rooms)+len(types))
	for _, r := range rooms {
		args = append(args, string(r))
	}
	for _, t := range types {
		args = append(args, t)
	}
	return args
}

// activitySelect is the room activity query over the rows of from, which
// names each room c.room_id. Each room costs two short backward index walks
// from its newest event (events_room_pos). The bump types are $1..$n.
func activitySelect(bumpTypes []string, from string) string {
	bumpCond := "FALSE"
	if len(bumpTypes) > 0 {
		bumpCond = "e.type IN " + In(1, len(bumpTypes))
	}
	const accepted = `NOT e.rejected AND NOT e.outlier AND NOT e.soft_failed`
	return `SELECT c.room_id,
		(SELECT e.stream_pos FROM events e WHERE e.room_id = c.room_id AND ` + accepted + ` ORDER BY e.stream_pos DESC LIMIT 1),
		(SELECT e.stream_pos FROM events e WHERE e.room_id = c.room_id AND ` + bumpCond + ` AND ` + accepted + ` ORDER BY e.stream_pos DESC LIMIT 1)
		FROM ` + from
}

func (s *Store) scanActivity(ctx context.Context, out map[id.RoomID]storage.RoomActivity, query string, args []any) error {
	rows, err := s.db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var room string
		var last, bump sql.NullInt64
		if err := rows.Scan(&room, &last, &bump); err != nil {
			return err
		}
		out[id.RoomID(room)] = storage.RoomActivity{Last: last.Int64, Bump: bump.Int64}
	}
	return rows.Err()
}

// JoinedRoomActivity implements storage.SlidingSyncStore.
func (s *Store) JoinedRoomActivity(ctx context.Context, user id.UserID, bumpTypes []string) (map[id.RoomID]storage.RoomActivity, error) {
	// SQLite numbers $N parameters in order of appearance: keep them in order.
	args := make([]any, 0, len(bumpTypes)+1)
	for _, t := range bumpTypes {
		args = append(args, t)
	}
	args = append(args, string(user))
	q := activitySelect(bumpTypes, `current_state c WHERE c.type = 'm.room.member' AND c.state_key = $`+
		strconv.Itoa(len(bumpTypes)+1)+` AND c.membership = 'join'`)
	out := map[id.RoomID]storage.RoomActivity{}
	return out, s.scanActivity(ctx, out, q, args)
}

// RoomsActivity implements storage.SlidingSyncStore.
func (s *Store) RoomsActivity(ctx context.Context, rooms []id.RoomID, bumpTypes []string) (map[id.RoomID]storage.RoomActivity, error) {
	out := map[id.RoomID]storage.RoomActivity{}
	err := chunkRooms(rooms, func(chunk []id.RoomID) error {
		args := make([]any, 0, len(bumpTypes)+len(chunk))
		for _, t := range bumpTypes {
			args = append(args, t)
		}
		for _, r := range chunk {
			args = append(args, string(r))
		}
		q := activitySelect(bumpTypes, `rooms c WHERE c.room_id IN `+In(len(bumpTypes)+1, len(chunk)))
		return s.scanActivity(ctx, out, q, args)
	})
	return out, err
}

// RoomsStateOfTypes implements storage.SlidingSyncStore.
func (s *Store) RoomsStateOfTypes(ctx context.Context, rooms []id.RoomID, types []string) ([]*storage.Event, error) {
	var out []*storage.Event
	if len(types) == 0 {
		return nil, nil
	}
	err := chunkRooms(rooms, func(chunk []id.RoomID) error {
		evs, err := scanEvents(s.db.r.QueryContext(ctx, `SELECT `+eventColsE+` FROM current_state c JOIN events e ON e.event_id = c.event_id
			WHERE c.room_id IN `+In(1, len(chunk))+` AND c.type IN `+In(1+len(chunk), len(types))+` AND c.state_key = ''`,
			roomTypeArgs(chunk, types)...))
		out = append(out, evs...)
		return err
	})
	return out, err
}

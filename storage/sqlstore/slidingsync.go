package sqlstore

import (
	"context"

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

// BumpStamps implements storage.SlidingSyncStore.
func (s *Store) BumpStamps(ctx context.Context, rooms []id.RoomID, types []string) (map[id.RoomID]int64, error) {
	out := make(map[id.RoomID]int64, len(rooms))
	err := chunkRooms(rooms, func(chunk []id.RoomID) error {
		typeCond := ""
		if len(types) > 0 {
			typeCond = ` AND type IN ` + In(1+len(chunk), len(types))
		}
		rows, err := s.db.r.QueryContext(ctx, `SELECT room_id, MAX(stream_pos) FROM events
			WHERE room_id IN `+In(1, len(chunk))+typeCond+`
			AND NOT rejected AND NOT outlier AND NOT soft_failed GROUP BY room_id`, roomTypeArgs(chunk, types)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var room string
			var pos int64
			if err := rows.Scan(&room, &pos); err != nil {
				return err
			}
			out[id.RoomID(room)] = pos
		}
		return rows.Err()
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

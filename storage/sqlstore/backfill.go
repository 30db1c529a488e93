package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// StoreBackfill implements storage.RoomStore. Positions below zero are
// explicit values of events.stream_pos (SQLite's AUTOINCREMENT and
// PostgreSQL's sequence only ever hand out values above the largest one, so
// they never collide with these).
func (s *Store) StoreBackfill(ctx context.Context, roomID id.RoomID, events []*storage.NewEvent, group int64) ([]storage.StoredEvent, error) {
	out := make([]storage.StoredEvent, len(events))
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		if s.db.Dialect == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, eventWriteLock); err != nil {
				return fmt.Errorf("lock event writes: %w", err)
			}
		}
		var low int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MIN(stream_pos), 0) FROM events`).Scan(&low); err != nil {
			return err
		}
		pos := min(low, 0)
		for i, ev := range events {
			if ev.RoomID != roomID {
				return fmt.Errorf("backfilled event %s is of room %s", ev.EventID, ev.RoomID)
			}
			var outlier, rejected bool
			err := tx.QueryRowContext(ctx, `SELECT outlier, rejected FROM events WHERE event_id = $1`, ev.EventID).Scan(&outlier, &rejected)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				pos--
				_, err = tx.ExecContext(ctx, `INSERT INTO events (stream_pos, event_id, room_id, type, state_key, sender, depth, origin_ts, membership, pdu, unsigned,
					txn_id, device_id, rejected, outlier, soft_failed, redacted, state_before, state_after)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, '', '', FALSE, FALSE, FALSE, $12, $13, $14)`,
					pos, ev.EventID, ev.RoomID, ev.Type, nullString(ev.StateKey), ev.Sender, ev.Depth, ev.OriginTS, nullIfEmpty(ev.Membership),
					string(ev.JSON), string(ev.Unsigned), ev.Redacted, group, group)
				if err != nil {
					return Conflict(err)
				}
			case err != nil:
				return err
			case outlier && !rejected:
				s.eventsMutated.Add(1)
				pos--
				if _, err := tx.ExecContext(ctx, `UPDATE events SET stream_pos = $1, outlier = FALSE, state_before = $2, state_after = $3 WHERE event_id = $4`,
					pos, group, group, ev.EventID); err != nil {
					return err
				}
			default:
				continue
			}
			out[i] = storage.StoredEvent{StreamPos: pos, StateBefore: group, StateAfter: group}
			for _, prev := range ev.PrevEvents {
				if _, err := tx.ExecContext(ctx, `INSERT INTO event_edges (event_id, prev_event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, ev.EventID, prev); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EarliestEvent implements storage.RoomStore.
func (s *Store) EarliestEvent(ctx context.Context, roomID id.RoomID) (*storage.Event, error) {
	ev, err := scanEvent(s.db.r.QueryRowContext(ctx, `SELECT `+eventCols+` FROM events WHERE room_id = $1
		AND NOT rejected AND NOT outlier AND NOT soft_failed ORDER BY stream_pos LIMIT 1`, roomID))
	if err != nil {
		return nil, NotFound(err)
	}
	return ev, nil
}

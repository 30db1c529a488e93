package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"
)

// roomTables are the tables keyed by room_id whose rows describe the room
// itself (deleted together, so the room vanishes at once). blocked_rooms is
// not among them: a block outlives the purge, as in Synapse.
var roomTables = []string{
	"rooms", "current_state", "forward_extremities", "room_aliases", "forgotten_rooms",
	"receipts", "push_notified", "push_counts", "push_changes", "push_read_upto", "relations",
	"account_data", "backup_keys", "event_reports", "server_notice_rooms", "appservice_room_directory",
}

// purgeBatch is how many events or state groups one purge transaction deletes.
const purgeBatch = 500

// notHeld selects held_events rows no compliance hold covers any more.
const notHeld = `NOT EXISTS (SELECT 1 FROM compliance_holds h
	WHERE (h.kind = 'room' AND h.target = held_events.room_id) OR (h.kind = 'user' AND h.target = held_events.sender))`

// PurgeRoom implements storage.RetentionStore.
func (s *Store) PurgeRoom(ctx context.Context, roomID id.RoomID) (int, error) {
	if err := s.purgeRoomRows(ctx, roomID); err != nil {
		return 0, err
	}
	total := 0
	for {
		n, err := s.purgeRoomEvents(ctx, roomID)
		if err != nil {
			return total, err
		}
		total += n
		if n < purgeBatch {
			break
		}
	}
	for {
		n, err := s.purgeRoomStateGroups(ctx, roomID)
		if err != nil {
			return total, err
		}
		if n < purgeBatch {
			break
		}
	}
	// Once more, for rows written while the events went (a receipt, a search
	// index catch-up): the room's events no longer exist, so nothing new follows.
	return total, s.purgeRoomRows(ctx, roomID)
}

// purgeRoomRows deletes, in one transaction, every row keyed by the room
// except its events and state groups.
func (s *Store) purgeRoomRows(ctx context.Context, roomID id.RoomID) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if s.fts5 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM search_fts WHERE rowid IN (SELECT stream_pos FROM search_docs WHERE room_id = $1)`, roomID); err != nil {
				return fmt.Errorf("purge search index: %w", err)
			}
		}
		for _, table := range append([]string{"search_docs"}, roomTables...) {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE room_id = $1`, roomID); err != nil {
				return fmt.Errorf("purge %s: %w", table, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM held_events WHERE room_id = $1 AND `+notHeld, roomID); err != nil {
			return fmt.Errorf("purge held_events: %w", err)
		}
		// Notifications still queued for push gateways.
		if _, err := tx.ExecContext(ctx, `DELETE FROM push_queue WHERE payload LIKE $1 ESCAPE '\'`,
			`%"room_id":"`+likeEscape(string(roomID))+`"%`); err != nil {
			return fmt.Errorf("purge push_queue: %w", err)
		}
		return nil
	})
}

// purgeRoomEvents deletes up to purgeBatch of the room's events and the rows
// keyed by their IDs, keeping those under a compliance hold in held_events.
func (s *Store) purgeRoomEvents(ctx context.Context, roomID id.RoomID) (int, error) {
	n := 0
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		s.eventsMutated.Add(1)
		rows, err := tx.QueryContext(ctx, `SELECT event_id FROM events WHERE room_id = $1 LIMIT $2`, roomID, purgeBatch)
		if err != nil {
			return err
		}
		var ids []any
		for rows.Next() {
			var evID string
			if err := rows.Scan(&evID); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, evID)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		n = len(ids)
		if n == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO held_events (event_id, room_id, sender, stream_pos, pdu, held_ts)
			SELECT e.event_id, e.room_id, e.sender, e.stream_pos, e.pdu, $1 FROM events e
			WHERE e.event_id IN `+In(2, n)+` AND EXISTS (SELECT 1 FROM compliance_holds h
				WHERE (h.kind = 'room' AND h.target = e.room_id) OR (h.kind = 'user' AND h.target = e.sender))
			ON CONFLICT (event_id) DO NOTHING`, append([]any{time.Now().UnixMilli()}, ids...)...); err != nil {
			return fmt.Errorf("keep held events: %w", err)
		}
		// The newest event may be among these: keep the PDU stream position
		// where it is (see MaxStreamPos).
		if _, err := tx.ExecContext(ctx, `INSERT INTO stream_positions (name, pos)
			SELECT $1, COALESCE(MAX(stream_pos), 0) FROM events WHERE 1 = 1
			ON CONFLICT (name) DO UPDATE SET pos = CASE WHEN excluded.pos > stream_positions.pos THEN excluded.pos ELSE stream_positions.pos END`,
			streamEventsFloor); err != nil {
			return fmt.Errorf("keep stream position: %w", err)
		}
		in := In(1, n)
		if s.fts5 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM search_fts WHERE rowid IN (SELECT stream_pos FROM search_docs WHERE event_id IN `+in+`)`, ids...); err != nil {
				return err
			}
		}
		for _, table := range []string{"search_docs", "txn_ids", "relations", "event_edges", "events"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE event_id IN `+in, ids...); err != nil {
				return fmt.Errorf("purge %s: %w", table, err)
			}
		}
		return nil
	})
	return n, err
}

// purgeRoomStateGroups deletes up to purgeBatch of the room's state groups and their entries.
func (s *Store) purgeRoomStateGroups(ctx context.Context, roomID id.RoomID) (int, error) {
	n := 0
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT group_id FROM state_groups WHERE room_id = $1 LIMIT $2`, roomID, purgeBatch)
		if err != nil {
			return err
		}
		var groups []any
		for rows.Next() {
			var g int64
			if err := rows.Scan(&g); err != nil {
				rows.Close()
				return err
			}
			groups = append(groups, g)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		n = len(groups)
		if n == 0 {
			return nil
		}
		for _, table := range []string{"state_group_entries", "state_groups"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE group_id IN `+In(1, n), groups...); err != nil {
				return fmt.Errorf("purge %s: %w", table, err)
			}
		}
		return nil
	})
	return n, err
}

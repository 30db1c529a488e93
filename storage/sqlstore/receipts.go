package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"math"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

var _ storage.ReceiptStore = (*Store)(nil)

// PutReceipt implements storage.ReceiptStore.
func (s *Store) PutReceipt(ctx context.Context, r storage.Receipt, readUpTo int64) (int64, error) {
	var pos int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		pos, err = nextStreamPos(ctx, tx, streamReceipt)
		if err != nil {
			return fmt.Errorf("receipt position: %w", err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id, ts, stream_pos)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE
			SET event_id = excluded.event_id, ts = excluded.ts, stream_pos = excluded.stream_pos`,
			string(r.RoomID), r.Type, string(r.UserID), r.ThreadID, string(r.EventID), r.TS, pos)
		if err != nil {
			return fmt.Errorf("store receipt: %w", err)
		}
		switch {
		case readUpTo > 0:
			_, err := tx.ExecContext(ctx, `INSERT INTO push_read_upto (user_id, room_id, thread_id, event_pos) VALUES ($1, $2, $3, $4)
				ON CONFLICT (user_id, room_id, thread_id) DO UPDATE
				SET event_pos = CASE WHEN excluded.event_pos > push_read_upto.event_pos THEN excluded.event_pos ELSE push_read_upto.event_pos END`,
				string(r.UserID), string(r.RoomID), r.ThreadID, readUpTo)
			if err != nil {
				return fmt.Errorf("store read position: %w", err)
			}
			return s.recountUnread(ctx, tx, r.UserID, r.RoomID, r.ThreadID, readUpTo)
		case readUpTo < 0:
			return s.recountUnread(ctx, tx, r.UserID, r.RoomID, r.ThreadID, math.MaxInt64)
		}
		return nil
	})
	return pos, err
}

// notifChanged records in the notif stream that user's counts in room changed.
func notifChanged(ctx context.Context, tx *sql.Tx, user id.UserID, room id.RoomID) error {
	pos, err := nextStreamPos(ctx, tx, streamNotif)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO push_changes (user_id, room_id, stream_pos) VALUES ($1, $2, $3)
		ON CONFLICT (user_id, room_id) DO UPDATE SET stream_pos = excluded.stream_pos`, string(user), string(room), pos)
	return err
}

// ReceiptsBetween implements storage.ReceiptStore.
func (s *Store) ReceiptsBetween(ctx context.Context, rooms []id.RoomID, from, to int64) ([]storage.Receipt, error) {
	var out []storage.Receipt
	for start := 0; start < len(rooms); start += 500 {
		chunk := rooms[start:min(start+500, len(rooms))]
		args := []any{from, to}
		for _, r := range chunk {
			args = append(args, string(r))
		}
		rows, err := s.db.r.QueryContext(ctx, `SELECT room_id, receipt_type, user_id, thread_id, event_id, ts, stream_pos FROM receipts
			WHERE stream_pos > $1 AND stream_pos <= $2 AND room_id IN `+In(3, len(chunk))+` ORDER BY stream_pos`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var r storage.Receipt
			var room, user, ev string
			if err := rows.Scan(&room, &r.Type, &user, &r.ThreadID, &ev, &r.TS, &r.Pos); err != nil {
				rows.Close()
				return nil, err
			}
			r.RoomID, r.UserID, r.EventID = id.RoomID(room), id.UserID(user), id.EventID(ev)
			out = append(out, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ReceiptPosition implements storage.ReceiptStore.
func (s *Store) ReceiptPosition(ctx context.Context) (int64, error) {
	return s.streamPos(ctx, streamReceipt)
}

// ReceiptEvent implements storage.ReceiptStore.
func (s *Store) ReceiptEvent(ctx context.Context, room id.RoomID, typ string, user id.UserID, thread string) (id.EventID, error) {
	var ev string
	err := s.db.r.QueryRowContext(ctx, `SELECT event_id FROM receipts WHERE room_id = $1 AND receipt_type = $2 AND user_id = $3 AND thread_id = $4`,
		string(room), typ, string(user), thread).Scan(&ev)
	if err != nil {
		return "", NotFound(err)
	}
	return id.EventID(ev), nil
}

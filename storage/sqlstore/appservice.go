package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// ClaimAppService implements storage.AppServiceStore.
func (s *Store) ClaimAppService(ctx context.Context, asID, owner string, now, until, cursor int64) (bool, error) {
	var ok bool
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO appservice_state (as_id, event_cursor) VALUES ($1, $2)
			ON CONFLICT (as_id) DO NOTHING`, asID, cursor); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE appservice_state SET lease_owner = $1, lease_until = $2
			WHERE as_id = $3 AND (lease_owner = $1 OR lease_until < $4)`, owner, until, asID, now)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		ok = n == 1
		return err
	})
	return ok, err
}

// ReleaseAppService implements storage.AppServiceStore.
func (s *Store) ReleaseAppService(ctx context.Context, asID, owner string) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE appservice_state SET lease_owner = '', lease_until = 0 WHERE as_id = $1 AND lease_owner = $2`, asID, owner)
		return err
	})
}

// AppServiceCursor implements storage.AppServiceStore.
func (s *Store) AppServiceCursor(ctx context.Context, asID string) (int64, error) {
	var pos int64
	err := s.db.r.QueryRowContext(ctx, `SELECT event_cursor FROM appservice_state WHERE as_id = $1`, asID).Scan(&pos)
	return pos, NotFound(err)
}

// TimelineEventsAfter implements storage.AppServiceStore.
func (s *Store) TimelineEventsAfter(ctx context.Context, from int64, limit int) ([]*storage.Event, error) {
	return scanEvents(s.db.r.QueryContext(ctx, `SELECT `+eventCols+` FROM events WHERE stream_pos > $1
		AND NOT rejected AND NOT outlier AND NOT soft_failed ORDER BY stream_pos LIMIT $2`, from, limit))
}

// holdsLease fails with ErrLeaseLost unless owner holds asID's lease, and
// returns the service's last transaction ID.
func holdsLease(ctx context.Context, tx *sql.Tx, asID, owner string) (int64, error) {
	var last int64
	err := tx.QueryRowContext(ctx, `SELECT last_txn_id FROM appservice_state WHERE as_id = $1 AND lease_owner = $2`, asID, owner).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, storage.ErrLeaseLost
	}
	return last, err
}

// QueueAppServiceEvents implements storage.AppServiceStore.
func (s *Store) QueueAppServiceEvents(ctx context.Context, asID, owner string, events []id.EventID, cursor int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := holdsLease(ctx, tx, asID, owner); err != nil {
			return err
		}
		for _, ev := range events {
			if _, err := tx.ExecContext(ctx, `INSERT INTO appservice_queue (as_id, kind, event_id) VALUES ($1, $2, $3)`,
				asID, storage.AppServiceItemEvent, ev); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE appservice_state SET event_cursor = $1 WHERE as_id = $2 AND event_cursor < $1`, cursor, asID)
		return err
	})
}

// QueueAppServiceEphemeral implements storage.AppServiceStore.
func (s *Store) QueueAppServiceEphemeral(ctx context.Context, items map[string][][]byte) error {
	if len(items) == 0 {
		return nil
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		for asID, payloads := range items {
			for _, p := range payloads {
				if _, err := tx.ExecContext(ctx, `INSERT INTO appservice_queue (as_id, kind, payload) VALUES ($1, $2, $3)`,
					asID, storage.AppServiceItemEphemeral, string(p)); err != nil {
					return err
				}
			}
		}
		return s.announce(ctx, tx, storage.AppServiceTopic)
	})
}

// NextAppServiceTxn implements storage.AppServiceStore.
func (s *Store) NextAppServiceTxn(ctx context.Context, asID, owner string, limit int) (*storage.AppServiceTxn, error) {
	// Workers look after every committed event: an empty queue must not
	// cost a write transaction.
	var queued bool
	err := s.db.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM appservice_queue WHERE as_id = $1) FROM appservice_state
		WHERE as_id = $1 AND lease_owner = $2`, asID, owner).Scan(&queued)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, storage.ErrLeaseLost
	} else if err != nil || !queued {
		return nil, err
	}
	var txn *storage.AppServiceTxn
	err = s.db.Write(ctx, func(tx *sql.Tx) error {
		last, err := holdsLease(ctx, tx, asID, owner)
		if err != nil {
			return err
		}
		var open sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MIN(txn_id) FROM appservice_queue WHERE as_id = $1 AND txn_id IS NOT NULL`, asID).Scan(&open); err != nil {
			return err
		}
		txnID := open.Int64
		if !open.Valid {
			var upTo sql.NullInt64
			if err := tx.QueryRowContext(ctx, `SELECT MAX(id) FROM (SELECT id FROM appservice_queue WHERE as_id = $1 AND txn_id IS NULL ORDER BY id LIMIT $2) first`,
				asID, limit).Scan(&upTo); err != nil {
				return err
			}
			if !upTo.Valid {
				return nil
			}
			txnID = last + 1
			if _, err := tx.ExecContext(ctx, `UPDATE appservice_queue SET txn_id = $1 WHERE as_id = $2 AND txn_id IS NULL AND id <= $3`, txnID, asID, upTo.Int64); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE appservice_state SET last_txn_id = $1 WHERE as_id = $2`, txnID, asID); err != nil {
				return err
			}
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, kind, event_id, payload FROM appservice_queue WHERE as_id = $1 AND txn_id = $2 ORDER BY id`, asID, txnID)
		if err != nil {
			return err
		}
		defer rows.Close()
		txn = &storage.AppServiceTxn{TxnID: txnID}
		for rows.Next() {
			var it storage.AppServiceItem
			var evID, payload string
			if err := rows.Scan(&it.ID, &it.Kind, &evID, &payload); err != nil {
				return err
			}
			it.EventID = id.EventID(evID)
			if payload != "" {
				it.Payload = []byte(payload)
			}
			txn.Items = append(txn.Items, it)
		}
		return rows.Err()
	})
	return txn, err
}

// CompleteAppServiceTxn implements storage.AppServiceStore.
func (s *Store) CompleteAppServiceTxn(ctx context.Context, asID string, txnID int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM appservice_queue WHERE as_id = $1 AND txn_id = $2`, asID, txnID)
		return err
	})
}

// SetAppServiceRoomPublic implements storage.AppServiceStore.
func (s *Store) SetAppServiceRoomPublic(ctx context.Context, asID, networkID string, room id.RoomID, public bool) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		q := `DELETE FROM appservice_room_directory WHERE as_id = $1 AND network_id = $2 AND room_id = $3`
		if public {
			q = `INSERT INTO appservice_room_directory (as_id, network_id, room_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`
		}
		_, err := tx.ExecContext(ctx, q, asID, networkID, room)
		return err
	})
}

// AppServicePublicRooms implements storage.AppServiceStore.
func (s *Store) AppServicePublicRooms(ctx context.Context, asID, networkID string) ([]id.RoomID, error) {
	q, args := `SELECT DISTINCT room_id FROM appservice_room_directory`, []any{}
	if asID != "" {
		q, args = q+` WHERE as_id = $1 AND network_id = $2`, []any{asID, networkID}
	}
	return queryColumn[id.RoomID](ctx, s.db.r, q+` ORDER BY room_id`, args...)
}

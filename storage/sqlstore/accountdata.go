package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

var _ storage.AccountDataStore = (*Store)(nil)

// PutAccountData implements storage.AccountDataStore.
func (s *Store) PutAccountData(ctx context.Context, user id.UserID, room id.RoomID, typ string, content json.RawMessage) (int64, error) {
	var pos int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		pos, err = putAccountData(ctx, tx, user, room, typ, content)
		return err
	})
	return pos, err
}

func putAccountData(ctx context.Context, tx *sql.Tx, user id.UserID, room id.RoomID, typ string, content json.RawMessage) (int64, error) {
	pos, err := nextStreamPos(ctx, tx, streamAccountData)
	if err != nil {
		return 0, fmt.Errorf("account data position: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO account_data (user_id, room_id, type, content, stream_pos) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = excluded.content, stream_pos = excluded.stream_pos`,
		string(user), string(room), typ, string(content), pos)
	if err != nil {
		return 0, fmt.Errorf("store account data: %w", err)
	}
	return pos, nil
}

// UpdateAccountData implements storage.AccountDataStore.
func (s *Store) UpdateAccountData(ctx context.Context, user id.UserID, room id.RoomID, typ string, fn func(old json.RawMessage) (json.RawMessage, error)) (int64, error) {
	var pos int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		var old sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = $3`,
			string(user), string(room), typ).Scan(&old)
		if err != nil && err != sql.ErrNoRows {
			return err
		}
		var prev json.RawMessage
		if old.Valid {
			prev = json.RawMessage(old.String)
		}
		next, err := fn(prev)
		if err != nil {
			return err
		}
		pos, err = putAccountData(ctx, tx, user, room, typ, next)
		return err
	})
	return pos, err
}

// GetAccountData implements storage.AccountDataStore.
func (s *Store) GetAccountData(ctx context.Context, user id.UserID, room id.RoomID, typ string) (json.RawMessage, error) {
	var content string
	err := s.db.r.QueryRowContext(ctx, `SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = $3`,
		string(user), string(room), typ).Scan(&content)
	if err != nil {
		return nil, NotFound(err)
	}
	return json.RawMessage(content), nil
}

// AccountDataBetween implements storage.AccountDataStore.
func (s *Store) AccountDataBetween(ctx context.Context, user id.UserID, from, to int64) ([]storage.AccountData, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT room_id, type, content, stream_pos FROM account_data
		WHERE user_id = $1 AND stream_pos > $2 AND stream_pos <= $3 ORDER BY stream_pos`, string(user), from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.AccountData
	for rows.Next() {
		var ad storage.AccountData
		var room, content string
		if err := rows.Scan(&room, &ad.Type, &content, &ad.Pos); err != nil {
			return nil, err
		}
		ad.RoomID, ad.Content = id.RoomID(room), json.RawMessage(content)
		out = append(out, ad)
	}
	return out, rows.Err()
}

// AccountDataPosition implements storage.AccountDataStore.
func (s *Store) AccountDataPosition(ctx context.Context) (int64, error) {
	return s.streamPos(ctx, streamAccountData)
}

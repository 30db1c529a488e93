package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// GetProfile implements storage.ProfileStore.
func (s *Store) GetProfile(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error) {
	var one int
	if err := s.db.r.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE user_id = $1`, userID).Scan(&one); err != nil {
		return nil, NotFound(err)
	}
	rows, err := s.db.r.QueryContext(ctx, `SELECT field, value FROM profiles WHERE user_id = $1`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]json.RawMessage{}
	for rows.Next() {
		var field, value string
		if err := rows.Scan(&field, &value); err != nil {
			return nil, err
		}
		out[field] = json.RawMessage(value)
	}
	return out, rows.Err()
}

// SetProfileField implements storage.ProfileStore.
func (s *Store) SetProfileField(ctx context.Context, userID id.UserID, field string, value json.RawMessage, maxBytes int) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE user_id = $1`, userID).Scan(&one); err != nil {
			return NotFound(err)
		}
		// Size of the profile as a JSON object: {"k":v,...}.
		var others int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(LENGTH(field) + LENGTH(value) + 4), 0) FROM profiles WHERE user_id = $1 AND field <> $2`,
			userID, field).Scan(&others); err != nil {
			return err
		}
		if maxBytes > 0 && int(others)+len(field)+len(value)+4+2 > maxBytes {
			return storage.ErrTooLarge
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO profiles (user_id, field, value) VALUES ($1, $2, $3)
			ON CONFLICT (user_id, field) DO UPDATE SET value = excluded.value`, userID, field, string(value))
		return err
	})
}

// DeleteProfileField implements storage.ProfileStore.
func (s *Store) DeleteProfileField(ctx context.Context, userID id.UserID, field string) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM profiles WHERE user_id = $1 AND field = $2`, userID, field)
		return err
	})
}

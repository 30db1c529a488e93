package sqlstore

import (
	"context"
	"database/sql"

	"parley/storage"
)

// ListRegistrationTokens implements storage.RegistrationTokenAdminStore.
func (s *Store) ListRegistrationTokens(ctx context.Context) ([]storage.RegistrationToken, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT token, uses_allowed, pending, completed, expiry_time FROM registration_tokens ORDER BY token`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []storage.RegistrationToken{}
	for rows.Next() {
		t, err := scanRegistrationToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *t)
	}
	return out, rows.Err()
}

// UpdateRegistrationToken implements storage.RegistrationTokenAdminStore.
func (s *Store) UpdateRegistrationToken(ctx context.Context, token string, setUses bool, uses *int, setExpiry bool, expiry *int64) (*storage.RegistrationToken, error) {
	var t *storage.RegistrationToken
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		if t, err = scanRegistrationToken(tx.QueryRowContext(ctx,
			`SELECT token, uses_allowed, pending, completed, expiry_time FROM registration_tokens WHERE token = $1`+s.forUpdate(), token)); err != nil {
			return err
		}
		if setUses {
			t.UsesAllowed = uses
		}
		if setExpiry {
			t.ExpiryTime = expiry
		}
		_, err = tx.ExecContext(ctx, `UPDATE registration_tokens SET uses_allowed = $1, expiry_time = $2 WHERE token = $3`, t.UsesAllowed, t.ExpiryTime, token)
		return err
	})
	return t, err
}

// DeleteRegistrationToken implements storage.RegistrationTokenAdminStore.
func (s *Store) DeleteRegistrationToken(ctx context.Context, token string) error {
	return s.execOne(ctx, `DELETE FROM registration_tokens WHERE token = $1`, token)
}

package sqlstore

import (
	"context"
	"database/sql"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

var _ storage.OpenIDStore = (*Store)(nil)

// CreateOpenIDToken implements storage.OpenIDStore; expired tokens are
// deleted in the same transaction.
func (s *Store) CreateOpenIDToken(ctx context.Context, hash []byte, user id.UserID, now, expiresTS int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM openid_tokens WHERE expires_ts <= $1`, now); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO openid_tokens (token_hash, user_id, expires_ts) VALUES ($1, $2, $3)`, hash, user, expiresTS)
		return err
	})
}

// OpenIDTokenUser implements storage.OpenIDStore.
func (s *Store) OpenIDTokenUser(ctx context.Context, hash []byte, now int64) (id.UserID, error) {
	var user id.UserID
	err := s.db.r.QueryRowContext(ctx, `SELECT user_id FROM openid_tokens WHERE token_hash = $1 AND expires_ts > $2`, hash, now).Scan(&user)
	return user, NotFound(err)
}

package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// CreateBackupVersion implements storage.KeyStore.
func (s *Store) CreateBackupVersion(ctx context.Context, user id.UserID, algorithm string, authData json.RawMessage) (int64, error) {
	var v int64
	var err error
	// On PostgreSQL two concurrent creations may pick the same number; the
	// loser retries with the next one.
	for attempt := 0; attempt < 5; attempt++ {
		err = s.db.Write(ctx, func(tx *sql.Tx) error {
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM backup_versions WHERE user_id = $1`, user).Scan(&v); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO backup_versions (user_id, version, algorithm, auth_data) VALUES ($1, $2, $3, $4)`,
				user, v, algorithm, string(authData))
			return Conflict(err)
		})
		if !errors.Is(err, storage.ErrConflict) {
			break
		}
	}
	return v, err
}

// currentBackupVersion returns the user's newest undeleted version, 0 for none.
func currentBackupVersion(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, user id.UserID) (int64, error) {
	var v int64
	err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM backup_versions WHERE user_id = $1 AND NOT deleted`, user).Scan(&v)
	return v, err
}

// GetBackupVersion implements storage.KeyStore.
func (s *Store) GetBackupVersion(ctx context.Context, user id.UserID, version int64) (*storage.BackupVersion, error) {
	if version == 0 {
		v, err := currentBackupVersion(ctx, s.db.r, user)
		if err != nil {
			return nil, err
		}
		if v == 0 {
			return nil, storage.ErrNotFound
		}
		version = v
	}
	b := &storage.BackupVersion{Version: version}
	var auth string
	err := s.db.r.QueryRowContext(ctx, `SELECT algorithm, auth_data, etag FROM backup_versions WHERE user_id = $1 AND version = $2 AND NOT deleted`,
		user, version).Scan(&b.Algorithm, &auth, &b.Etag)
	if err != nil {
		return nil, NotFound(err)
	}
	b.AuthData = json.RawMessage(auth)
	if err := s.db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM backup_keys WHERE user_id = $1 AND version = $2`, user, version).Scan(&b.Count); err != nil {
		return nil, err
	}
	return b, nil
}

// UpdateBackupVersion implements storage.KeyStore.
func (s *Store) UpdateBackupVersion(ctx context.Context, user id.UserID, version int64, authData json.RawMessage) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE backup_versions SET auth_data = $1 WHERE user_id = $2 AND version = $3 AND NOT deleted`, string(authData), user, version)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		return nil
	})
}

// DeleteBackupVersion implements storage.KeyStore.
func (s *Store) DeleteBackupVersion(ctx context.Context, user id.UserID, version int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE backup_versions SET deleted = TRUE WHERE user_id = $1 AND version = $2`, user, version)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM backup_keys WHERE user_id = $1 AND version = $2`, user, version)
		return err
	})
}

// PutBackupKeys implements storage.KeyStore.
func (s *Store) PutBackupKeys(ctx context.Context, user id.UserID, version int64, keys []storage.BackupKey) (etag, count, current int64, err error) {
	err = s.db.Write(ctx, func(tx *sql.Tx) error {
		var deleted bool
		if err := tx.QueryRowContext(ctx, `SELECT deleted FROM backup_versions WHERE user_id = $1 AND version = $2`, user, version).Scan(&deleted); err != nil {
			return NotFound(err)
		}
		cur, err := currentBackupVersion(ctx, tx, user)
		if err != nil {
			return err
		}
		current = cur
		if deleted && cur == 0 {
			return storage.ErrNotFound
		}
		if cur != version {
			return fmt.Errorf("%w: current is %d", storage.ErrWrongBackupVersion, cur)
		}
		changed := false
		for _, k := range keys {
			// The spec's rules for replacing a backed-up session key
			// (client-server API, "Server-side key backups"): a verified key
			// beats an unverified one; then the lower first_message_index
			// wins; then the lower forwarded_count. An equal key does not
			// replace the stored one. The rule is the upsert's WHERE, so
			// concurrent uploads cannot replace a better key with a worse one.
			res, err := tx.ExecContext(ctx, `INSERT INTO backup_keys (user_id, version, room_id, session_id, first_message_index, forwarded_count, is_verified, session_data)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET
				first_message_index = excluded.first_message_index, forwarded_count = excluded.forwarded_count,
				is_verified = excluded.is_verified, session_data = excluded.session_data
				WHERE (excluded.is_verified AND NOT backup_keys.is_verified)
				OR (excluded.is_verified = backup_keys.is_verified AND (excluded.first_message_index < backup_keys.first_message_index
					OR (excluded.first_message_index = backup_keys.first_message_index AND excluded.forwarded_count < backup_keys.forwarded_count)))`,
				user, version, k.RoomID, k.SessionID, k.FirstMessageIndex, k.ForwardedCount, k.IsVerified, string(k.SessionData))
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				changed = true
			}
		}
		if changed {
			if _, err := tx.ExecContext(ctx, `UPDATE backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2`, user, version); err != nil {
				return err
			}
		}
		if err := tx.QueryRowContext(ctx, `SELECT etag FROM backup_versions WHERE user_id = $1 AND version = $2`, user, version).Scan(&etag); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM backup_keys WHERE user_id = $1 AND version = $2`, user, version).Scan(&count)
	})
	return etag, count, current, err
}

func backupKeyFilter(room id.RoomID, session string) (string, []any) {
	q := ""
	var args []any
	if room != "" {
		q += ` AND room_id = $3`
		args = append(args, room)
		if session != "" {
			q += ` AND session_id = $4`
			args = append(args, session)
		}
	}
	return q, args
}

// BackupKeys implements storage.KeyStore.
func (s *Store) BackupKeys(ctx context.Context, user id.UserID, version int64, room id.RoomID, session string) ([]storage.BackupKey, error) {
	var n int
	if err := s.db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM backup_versions WHERE user_id = $1 AND version = $2 AND NOT deleted`, user, version).Scan(&n); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, storage.ErrNotFound
	}
	filter, extra := backupKeyFilter(room, session)
	rows, err := s.db.r.QueryContext(ctx, `SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data
		FROM backup_keys WHERE user_id = $1 AND version = $2`+filter+` ORDER BY room_id, session_id`, append([]any{user, version}, extra...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.BackupKey
	for rows.Next() {
		var k storage.BackupKey
		var data string
		if err := rows.Scan(&k.RoomID, &k.SessionID, &k.FirstMessageIndex, &k.ForwardedCount, &k.IsVerified, &data); err != nil {
			return nil, err
		}
		k.SessionData = json.RawMessage(data)
		out = append(out, k)
	}
	return out, rows.Err()
}

// DeleteBackupKeys implements storage.KeyStore.
func (s *Store) DeleteBackupKeys(ctx context.Context, user id.UserID, version int64, room id.RoomID, session string) (etag, count int64, err error) {
	err = s.db.Write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM backup_versions WHERE user_id = $1 AND version = $2 AND NOT deleted`, user, version).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return storage.ErrNotFound
		}
		filter, extra := backupKeyFilter(room, session)
		res, err := tx.ExecContext(ctx, `DELETE FROM backup_keys WHERE user_id = $1 AND version = $2`+filter, append([]any{user, version}, extra...)...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2`, user, version); err != nil {
				return err
			}
		}
		if err := tx.QueryRowContext(ctx, `SELECT etag FROM backup_versions WHERE user_id = $1 AND version = $2`, user, version).Scan(&etag); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM backup_keys WHERE user_id = $1 AND version = $2`, user, version).Scan(&count)
	})
	return etag, count, err
}

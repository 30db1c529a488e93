package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// CreateUIASession implements storage.UIAStore.
func (s *Store) CreateUIASession(ctx context.Context, sess storage.UIASession, expireBefore int64) error {
	completed, err := json.Marshal(nonNil(sess.Completed))
	if err != nil {
		return err
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		// Abandoned sessions give back the registration-token uses they reserved.
		rows, err := tx.QueryContext(ctx, `SELECT registration_token FROM uia_sessions WHERE created_ts < $1 AND registration_token <> ''`, expireBefore)
		if err != nil {
			return err
		}
		var tokens []string
		for rows.Next() {
			var t string
			if err := rows.Scan(&t); err != nil {
				rows.Close()
				return err
			}
			tokens = append(tokens, t)
		}
		rows.Close()
		for _, t := range tokens {
			if _, err := tx.ExecContext(ctx, `UPDATE registration_tokens SET pending = pending - 1 WHERE token = $1 AND pending > 0`, t); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM uia_sessions WHERE created_ts < $1`, expireBefore); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO uia_sessions (session_id, op, user_id, created_ts, completed, registration_token, params, result_user_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			sess.ID, sess.Op, sess.UserID, sess.CreatedTS, string(completed), sess.RegistrationToken, sess.Params, sess.ResultUserID)
		return Conflict(err)
	})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type rowScanner interface{ Scan(...any) error }

func scanUIASession(sc rowScanner) (*storage.UIASession, error) {
	var sess storage.UIASession
	var completed string
	if err := sc.Scan(&sess.ID, &sess.Op, &sess.UserID, &sess.CreatedTS, &completed, &sess.RegistrationToken, &sess.Params, &sess.ResultUserID); err != nil {
		return nil, NotFound(err)
	}
	if err := json.Unmarshal([]byte(completed), &sess.Completed); err != nil {
		return nil, err
	}
	return &sess, nil
}

const uiaColumns = `session_id, op, user_id, created_ts, completed, registration_token, params, result_user_id`

// GetUIASession implements storage.UIAStore.
func (s *Store) GetUIASession(ctx context.Context, sessionID string) (*storage.UIASession, error) {
	return scanUIASession(s.db.r.QueryRowContext(ctx, `SELECT `+uiaColumns+` FROM uia_sessions WHERE session_id = $1`, sessionID))
}

// CompleteUIAStage implements storage.UIAStore.
func (s *Store) CompleteUIAStage(ctx context.Context, sessionID, stage, regToken string) (*storage.UIASession, error) {
	var sess *storage.UIASession
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		sess, err = scanUIASession(tx.QueryRowContext(ctx, `SELECT `+uiaColumns+` FROM uia_sessions WHERE session_id = $1`+s.forUpdate(), sessionID))
		if err != nil {
			return err
		}
		if !slices.Contains(sess.Completed, stage) {
			sess.Completed = append(sess.Completed, stage)
		}
		if regToken != "" {
			sess.RegistrationToken = regToken
		}
		completed, _ := json.Marshal(sess.Completed)
		_, err = tx.ExecContext(ctx, `UPDATE uia_sessions SET completed = $1, registration_token = $2 WHERE session_id = $3`,
			string(completed), sess.RegistrationToken, sessionID)
		return err
	})
	return sess, err
}

// SetUIAParams implements storage.UIAStore.
func (s *Store) SetUIAParams(ctx context.Context, sessionID, params string) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE uia_sessions SET params = $1 WHERE session_id = $2`, params, sessionID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		return nil
	})
}

// DeleteUIASession implements storage.UIAStore.
func (s *Store) DeleteUIASession(ctx context.Context, sessionID string) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM uia_sessions WHERE session_id = $1`, sessionID)
		return err
	})
}

// CreateRegistrationToken implements storage.RegistrationTokenStore.
func (s *Store) CreateRegistrationToken(ctx context.Context, t storage.RegistrationToken) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO registration_tokens (token, uses_allowed, pending, completed, expiry_time) VALUES ($1, $2, $3, $4, $5)`,
			t.Token, t.UsesAllowed, t.Pending, t.Completed, t.ExpiryTime)
		return Conflict(err)
	})
}

func scanRegistrationToken(sc rowScanner) (*storage.RegistrationToken, error) {
	var t storage.RegistrationToken
	var uses sql.NullInt64
	var expiry sql.NullInt64
	if err := sc.Scan(&t.Token, &uses, &t.Pending, &t.Completed, &expiry); err != nil {
		return nil, NotFound(err)
	}
	if uses.Valid {
		n := int(uses.Int64)
		t.UsesAllowed = &n
	}
	if expiry.Valid {
		t.ExpiryTime = &expiry.Int64
	}
	return &t, nil
}

// GetRegistrationToken implements storage.RegistrationTokenStore.
func (s *Store) GetRegistrationToken(ctx context.Context, token string) (*storage.RegistrationToken, error) {
	return scanRegistrationToken(s.db.r.QueryRowContext(ctx,
		`SELECT token, uses_allowed, pending, completed, expiry_time FROM registration_tokens WHERE token = $1`, token))
}

// ReserveRegistrationToken implements storage.RegistrationTokenStore.
func (s *Store) ReserveRegistrationToken(ctx context.Context, token string, now int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		// One conditional UPDATE, so concurrent reservations cannot exceed uses_allowed.
		res, err := tx.ExecContext(ctx, `UPDATE registration_tokens SET pending = pending + 1 WHERE token = $1
			AND (expiry_time IS NULL OR expiry_time > $2) AND (uses_allowed IS NULL OR pending + completed < uses_allowed)`, token, now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		return nil
	})
}

// ReleaseRegistrationToken implements storage.RegistrationTokenStore.
func (s *Store) ReleaseRegistrationToken(ctx context.Context, token string) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE registration_tokens SET pending = pending - 1 WHERE token = $1 AND pending > 0`, token)
		return err
	})
}

// CreateLoginToken implements storage.AccountStore.
func (s *Store) CreateLoginToken(ctx context.Context, tokenHash []byte, userID id.UserID, expiresTS int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM login_tokens WHERE expires_ts < $1`, expiresTS-24*3600*1000); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO login_tokens (token_hash, user_id, expires_ts) VALUES ($1, $2, $3)`, tokenHash, userID, expiresTS)
		return Conflict(err)
	})
}

// ConsumeLoginToken implements storage.AccountStore.
func (s *Store) ConsumeLoginToken(ctx context.Context, tokenHash []byte, now int64) (id.UserID, error) {
	var userID id.UserID
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		var expires int64
		err := tx.QueryRowContext(ctx, `DELETE FROM login_tokens WHERE token_hash = $1 RETURNING user_id, expires_ts`, tokenHash).Scan(&userID, &expires)
		if err != nil {
			return NotFound(err)
		}
		if expires <= now {
			return storage.ErrNotFound
		}
		return nil
	})
	return userID, err
}

// CreateRegistrationNonce implements storage.AccountStore.
func (s *Store) CreateRegistrationNonce(ctx context.Context, nonce string, createdTS int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM registration_nonces WHERE created_ts < $1`, createdTS-3600*1000); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO registration_nonces (nonce, created_ts) VALUES ($1, $2)`, nonce, createdTS)
		return Conflict(err)
	})
}

// ConsumeRegistrationNonce implements storage.AccountStore.
func (s *Store) ConsumeRegistrationNonce(ctx context.Context, nonce string, notBefore int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		var created int64
		if err := tx.QueryRowContext(ctx, `DELETE FROM registration_nonces WHERE nonce = $1 RETURNING created_ts`, nonce).Scan(&created); err != nil {
			return NotFound(err)
		}
		if created < notBefore {
			return storage.ErrNotFound
		}
		return nil
	})
}

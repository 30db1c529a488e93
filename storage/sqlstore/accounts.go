package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// CreateAccount implements storage.AccountStore.
func (s *Store) CreateAccount(ctx context.Context, acc storage.Account) error {
	return s.authWrite(ctx, func(tx *sql.Tx) error { return insertAccount(ctx, tx, acc) })
}

func insertAccount(ctx context.Context, tx *sql.Tx, acc storage.Account) error {
	if acc.CreatedTS == 0 {
		acc.CreatedTS = time.Now().UnixMilli()
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO accounts (user_id, password_hash, is_admin, is_guest, created_ts) VALUES ($1, $2, $3, $4, $5)`,
		acc.UserID, acc.PasswordHash, acc.IsAdmin, acc.IsGuest, acc.CreatedTS)
	return Conflict(err)
}

// Register implements storage.AccountStore.
func (s *Store) Register(ctx context.Context, reg storage.Registration) (*storage.Device, error) {
	var dev *storage.Device
	err := s.authWrite(ctx, func(tx *sql.Tx) error {
		if err := insertAccount(ctx, tx, reg.Account); err != nil {
			return err
		}
		if reg.DisplayName != "" {
			v, _ := json.Marshal(reg.DisplayName)
			if _, err := tx.ExecContext(ctx, `INSERT INTO profiles (user_id, field, value) VALUES ($1, 'displayname', $2)`, reg.Account.UserID, string(v)); err != nil {
				return err
			}
		}
		if reg.RegistrationToken != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE registration_tokens SET pending = CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END,
				completed = completed + 1 WHERE token = $1`, reg.RegistrationToken); err != nil {
				return err
			}
		}
		if reg.UIASession != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE uia_sessions SET result_user_id = $1, registration_token = '' WHERE session_id = $2`, reg.Account.UserID, reg.UIASession); err != nil {
				return err
			}
		}
		if reg.Device != nil {
			var err error
			dev, err = insertDevice(ctx, tx, *reg.Device)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", reg.Account.UserID, err)
	}
	return dev, nil
}

// GetAccount implements storage.AccountStore.
func (s *Store) GetAccount(ctx context.Context, userID id.UserID) (*storage.Account, error) {
	acc := storage.Account{UserID: userID}
	err := s.db.r.QueryRowContext(ctx, `SELECT password_hash, is_admin, is_guest, deactivated, created_ts FROM accounts WHERE user_id = $1`, userID).
		Scan(&acc.PasswordHash, &acc.IsAdmin, &acc.IsGuest, &acc.Deactivated, &acc.CreatedTS)
	if err != nil {
		return nil, NotFound(err)
	}
	return &acc, nil
}

// SetPassword implements storage.AccountStore.
func (s *Store) SetPassword(ctx context.Context, userID id.UserID, hash string, logoutDevices bool, keep id.DeviceID) error {
	return s.authWrite(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE accounts SET password_hash = $1 WHERE user_id = $2`, hash, userID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		if logoutDevices {
			return deleteAllDevices(ctx, tx, userID, keep)
		}
		return nil
	})
}

// DeactivateAccount implements storage.AccountStore.
func (s *Store) DeactivateAccount(ctx context.Context, userID id.UserID, erase bool) error {
	return s.authWrite(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE accounts SET deactivated = TRUE WHERE user_id = $1`, userID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		if err := deleteAllDevices(ctx, tx, userID, ""); err != nil {
			return err
		}
		// Pushers not tied to a device too.
		if err := deletePushers(ctx, tx, userID, "=", ""); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM login_tokens WHERE user_id = $1`, userID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM uia_sessions WHERE user_id = $1`, userID); err != nil {
			return err
		}
		if erase {
			if _, err := tx.ExecContext(ctx, `INSERT INTO erased_users (user_id, erased_ts) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING`,
				userID, time.Now().UnixMilli()); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `DELETE FROM profiles WHERE user_id = $1`, userID)
		}
		return err
	})
}

// CreateDevice implements storage.AccountStore.
func (s *Store) CreateDevice(ctx context.Context, d storage.NewDevice) (*storage.Device, error) {
	var dev *storage.Device
	err := s.authWrite(ctx, func(tx *sql.Tx) (err error) {
		dev, err = insertDevice(ctx, tx, d)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create device: %w", err)
	}
	return dev, nil
}

func insertDevice(ctx context.Context, tx *sql.Tx, d storage.NewDevice) (*storage.Device, error) {
	now := time.Now().UnixMilli()
	dev := &storage.Device{UserID: d.UserID, DeviceID: d.DeviceID, DisplayName: d.DisplayName, LastSeenTS: now, LastSeenIP: d.IP, IsGuest: d.IsGuest}
	// A login with an existing device ID replaces that device's session.
	if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2`, d.UserID, d.DeviceID); err != nil {
		return nil, err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO devices (user_id, device_id, display_name, last_seen_ts, last_seen_ip, is_guest) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (user_id, device_id) DO UPDATE SET last_seen_ts = excluded.last_seen_ts, last_seen_ip = excluded.last_seen_ip,
		display_name = CASE WHEN excluded.display_name = '' THEN devices.display_name ELSE excluded.display_name END`,
		d.UserID, d.DeviceID, d.DisplayName, now, d.IP, d.IsGuest)
	if err != nil {
		return nil, err
	}
	err = tx.QueryRowContext(ctx, `INSERT INTO access_tokens (token_hash, user_id, device_id, expires_ts, refresh_hash) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		d.AccessTokenHash, d.UserID, d.DeviceID, d.ExpiresTS, nullBytes(d.RefreshTokenHash)).Scan(&dev.SessionID)
	if err != nil {
		return nil, Conflict(err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT display_name FROM devices WHERE user_id = $1 AND device_id = $2`, d.UserID, d.DeviceID).Scan(&dev.DisplayName); err != nil {
		return nil, err
	}
	// Users sharing a room with d.UserID learn about the new device (keys.go).
	if _, err := markDeviceListChanged(ctx, tx, d.UserID); err != nil {
		return nil, err
	}
	return dev, nil
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

const deviceByTokenQuery = `SELECT t.id, t.prev_id, t.user_id, t.device_id, t.expires_ts, d.display_name, d.last_seen_ts, d.last_seen_ip, d.is_guest, a.is_admin
	FROM access_tokens t JOIN devices d ON d.user_id = t.user_id AND d.device_id = t.device_id
	LEFT JOIN accounts a ON a.user_id = t.user_id WHERE t.token_hash = $1`

// DeviceByAccessToken implements storage.AccountStore.
func (s *Store) DeviceByAccessToken(ctx context.Context, tokenHash []byte) (*storage.Device, bool, error) {
	var dev storage.Device
	var expires int64
	var admin sql.NullBool
	cache := s.db.Dialect == SQLite
	var gen uint64
	if cache {
		var e cachedToken
		var ok bool
		if e, gen, ok = s.tokens.get(tokenHash); ok {
			d := e.dev
			return &d, e.expires != 0 && e.expires <= time.Now().UnixMilli(), nil
		}
	}
	err := s.tokenStmt.QueryRowContext(ctx, tokenHash).
		Scan(&dev.SessionID, &dev.PrevSessionID, &dev.UserID, &dev.DeviceID, &expires, &dev.DisplayName, &dev.LastSeenTS, &dev.LastSeenIP, &dev.IsGuest, &admin)
	dev.IsAdmin = admin.Bool
	if err != nil {
		return nil, false, NotFound(err)
	}
	if cache {
		s.tokens.put(tokenHash, cachedToken{dev: dev, expires: expires}, gen)
	}
	return &dev, expires != 0 && expires <= time.Now().UnixMilli(), nil
}

const deviceColumns = `user_id, device_id, display_name, last_seen_ts, last_seen_ip, is_guest`

func scanDevice(sc interface{ Scan(...any) error }) (storage.Device, error) {
	var d storage.Device
	err := sc.Scan(&d.UserID, &d.DeviceID, &d.DisplayName, &d.LastSeenTS, &d.LastSeenIP, &d.IsGuest)
	return d, err
}

// GetDevice implements storage.AccountStore.
func (s *Store) GetDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID) (*storage.Device, error) {
	d, err := scanDevice(s.db.r.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE user_id = $1 AND device_id = $2`, userID, deviceID))
	if err != nil {
		return nil, NotFound(err)
	}
	return &d, nil
}

// ListDevices implements storage.AccountStore.
func (s *Store) ListDevices(ctx context.Context, userID id.UserID) ([]storage.Device, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE user_id = $1 ORDER BY device_id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []storage.Device{}
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// SetDeviceDisplayName implements storage.AccountStore.
func (s *Store) SetDeviceDisplayName(ctx context.Context, userID id.UserID, deviceID id.DeviceID, name string) error {
	return s.authWrite(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE devices SET display_name = $1 WHERE user_id = $2 AND device_id = $3`, name, userID, deviceID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		// The display name is part of /keys/query answers (keys.go).
		_, err = markDeviceListChanged(ctx, tx, userID)
		return err
	})
}

// UpdateDeviceLastSeen implements storage.AccountStore.
func (s *Store) UpdateDeviceLastSeen(ctx context.Context, userID id.UserID, deviceID id.DeviceID, ts int64, ip string) error {
	defer s.tokens.seen(string(userID), string(deviceID), ts, ip)
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE devices SET last_seen_ts = $1, last_seen_ip = $2 WHERE user_id = $3 AND device_id = $4`, ts, ip, userID, deviceID)
		return err
	})
}

// DeleteDevice implements storage.AccountStore.
func (s *Store) DeleteDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID) error {
	return s.authWrite(ctx, func(tx *sql.Tx) error {
		if err := deleteDeviceKeys(ctx, tx, userID, []id.DeviceID{deviceID}, ""); err != nil { // keys.go
			return err
		}
		// Tokens go first: the foreign key cascades on SQLite, but be explicit.
		if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2`, userID, deviceID); err != nil {
			return err
		}
		if err := deletePushers(ctx, tx, userID, "=", deviceID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE user_id = $1 AND device_id = $2`, userID, deviceID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		return nil
	})
}

// DeleteDevices implements storage.AccountStore.
func (s *Store) DeleteDevices(ctx context.Context, userID id.UserID, deviceIDs []id.DeviceID) error {
	return s.authWrite(ctx, func(tx *sql.Tx) error {
		if len(deviceIDs) > 0 { // keys.go
			if err := deleteDeviceKeys(ctx, tx, userID, deviceIDs, ""); err != nil {
				return err
			}
		}
		for start := 0; start < len(deviceIDs); start += 500 {
			chunk := deviceIDs[start:min(start+500, len(deviceIDs))]
			args := make([]any, 0, len(chunk)+1)
			args = append(args, userID)
			for _, d := range chunk {
				args = append(args, d)
			}
			in := In(2, len(chunk))
			if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE user_id = $1 AND device_id IN `+in, args...); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE user_id = $1 AND device_id IN `+in, args...); err != nil {
				return err
			}
		}
		for _, d := range deviceIDs {
			if err := deletePushers(ctx, tx, userID, "=", d); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteAllDevices implements storage.AccountStore.
func (s *Store) DeleteAllDevices(ctx context.Context, userID id.UserID, keep id.DeviceID) error {
	return s.authWrite(ctx, func(tx *sql.Tx) error { return deleteAllDevices(ctx, tx, userID, keep) })
}

func deleteAllDevices(ctx context.Context, tx *sql.Tx, userID id.UserID, keep id.DeviceID) error {
	if err := deleteDeviceKeys(ctx, tx, userID, nil, keep); err != nil { // keys.go
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE user_id = $1 AND device_id <> $2`, userID, keep); err != nil {
		return err
	}
	if err := deletePushers(ctx, tx, userID, "<>", keep); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE user_id = $1 AND device_id <> $2`, userID, keep)
	return err
}

// deletePushers removes the user's pushers whose device_id compares with op
// ("=" or "<>") to deviceID, and their queued pushes: a pusher lives as long
// as the session that created it (as in Synapse, where pushers of revoked
// access tokens are removed).
func deletePushers(ctx context.Context, tx *sql.Tx, userID id.UserID, op string, deviceID id.DeviceID) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM push_queue WHERE user_id = $1 AND EXISTS (SELECT 1 FROM pushers p
		WHERE p.user_id = push_queue.user_id AND p.app_id = push_queue.app_id AND p.pushkey = push_queue.pushkey AND p.device_id `+op+` $2)`,
		userID, deviceID); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM pushers WHERE user_id = $1 AND device_id `+op+` $2`, userID, deviceID)
	return err
}

// RefreshSession implements storage.AccountStore.
func (s *Store) RefreshSession(ctx context.Context, refreshHash, newAccessHash, newRefreshHash []byte, expiresTS int64) (*storage.Device, error) {
	var dev *storage.Device
	err := s.authWrite(ctx, func(tx *sql.Tx) error {
		var oldID, prevID int64
		var userID id.UserID
		var deviceID id.DeviceID
		err := tx.QueryRowContext(ctx, `SELECT id, prev_id, user_id, device_id FROM access_tokens WHERE refresh_hash = $1`+s.forUpdate(), refreshHash).
			Scan(&oldID, &prevID, &userID, &deviceID)
		if err != nil {
			return NotFound(err)
		}
		// Using a refresh token counts as using its access token: the pair it
		// replaced is revoked now.
		if prevID != 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE id = $1`, prevID); err != nil {
				return err
			}
		}
		// A refresh token reused before its successor was used replaces that
		// unused successor, so a device never has more than two live tokens.
		if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE prev_id = $1`, oldID); err != nil {
			return err
		}
		d, err := scanDevice(tx.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE user_id = $1 AND device_id = $2`, userID, deviceID))
		if err != nil {
			return NotFound(err)
		}
		err = tx.QueryRowContext(ctx, `INSERT INTO access_tokens (token_hash, user_id, device_id, expires_ts, refresh_hash, prev_id) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			newAccessHash, userID, deviceID, expiresTS, newRefreshHash, oldID).Scan(&d.SessionID)
		if err != nil {
			return Conflict(err)
		}
		d.PrevSessionID = oldID
		dev = &d
		return nil
	})
	return dev, err
}

// DropPredecessor implements storage.AccountStore.
func (s *Store) DropPredecessor(ctx context.Context, sessionID int64) error {
	return s.authWrite(ctx, func(tx *sql.Tx) error {
		var prev int64
		if err := tx.QueryRowContext(ctx, `SELECT prev_id FROM access_tokens WHERE id = $1`, sessionID).Scan(&prev); err != nil {
			return NotFound(err)
		}
		if prev == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE id = $1`, prev); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE access_tokens SET prev_id = 0 WHERE id = $1`, sessionID)
		return err
	})
}

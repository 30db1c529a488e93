package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

func (s *Store) CreateAccount(ctx context.Context, acc storage.Account) error {
	if acc.CreatedTS == 0 {
		acc.CreatedTS = time.Now().UnixMilli()
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO accounts (user_id, password_hash, is_admin, is_guest, created_ts) VALUES ($1, $2, $3, $4, $5)`,
			acc.UserID, acc.PasswordHash, acc.IsAdmin, acc.IsGuest, acc.CreatedTS)
		return Conflict(err)
	})
}

func (s *Store) GetAccount(ctx context.Context, userID id.UserID) (*storage.Account, error) {
	acc := storage.Account{UserID: userID}
	err := s.db.r.QueryRowContext(ctx, `SELECT password_hash, is_admin, is_guest, deactivated, created_ts FROM accounts WHERE user_id = $1`, userID).
		Scan(&acc.PasswordHash, &acc.IsAdmin, &acc.IsGuest, &acc.Deactivated, &acc.CreatedTS)
	if err != nil {
		return nil, NotFound(err)
	}
	return &acc, nil
}

func (s *Store) CreateDevice(ctx context.Context, d storage.NewDevice) (*storage.Device, error) {
	now := time.Now().UnixMilli()
	dev := &storage.Device{UserID: d.UserID, DeviceID: d.DeviceID, DisplayName: d.DisplayName, LastSeenTS: now, LastSeenIP: d.IP}
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		// A login with an existing device ID replaces that device's session.
		if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2`, d.UserID, d.DeviceID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO devices (user_id, device_id, display_name, last_seen_ts, last_seen_ip) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (user_id, device_id) DO UPDATE SET last_seen_ts = excluded.last_seen_ts, last_seen_ip = excluded.last_seen_ip,
			display_name = CASE WHEN excluded.display_name = '' THEN devices.display_name ELSE excluded.display_name END`,
			d.UserID, d.DeviceID, d.DisplayName, now, d.IP)
		if err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx, `INSERT INTO access_tokens (token_hash, user_id, device_id, expires_ts) VALUES ($1, $2, $3, $4) RETURNING id`,
			d.AccessTokenHash, d.UserID, d.DeviceID, d.ExpiresTS).Scan(&dev.SessionID)
		if err != nil {
			return Conflict(err)
		}
		return tx.QueryRowContext(ctx, `SELECT display_name FROM devices WHERE user_id = $1 AND device_id = $2`, d.UserID, d.DeviceID).Scan(&dev.DisplayName)
	})
	if err != nil {
		return nil, fmt.Errorf("create device: %w", err)
	}
	return dev, nil
}

func (s *Store) DeviceByAccessToken(ctx context.Context, tokenHash []byte) (*storage.Device, bool, error) {
	var dev storage.Device
	var expires int64
	err := s.db.r.QueryRowContext(ctx, `SELECT t.id, t.user_id, t.device_id, t.expires_ts, d.display_name, d.last_seen_ts, d.last_seen_ip, d.is_guest
		FROM access_tokens t JOIN devices d ON d.user_id = t.user_id AND d.device_id = t.device_id WHERE t.token_hash = $1`, tokenHash).
		Scan(&dev.SessionID, &dev.UserID, &dev.DeviceID, &expires, &dev.DisplayName, &dev.LastSeenTS, &dev.LastSeenIP, &dev.IsGuest)
	if err != nil {
		return nil, false, NotFound(err)
	}
	return &dev, expires != 0 && expires <= time.Now().UnixMilli(), nil
}

func (s *Store) DeleteDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE user_id = $1 AND device_id = $2`, userID, deviceID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2`, userID, deviceID)
		return err
	})
}

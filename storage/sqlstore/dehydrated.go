package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// Dehydrated devices (MSC3814): a device row without access tokens, its keys,
// and the opaque device_data the client stored with it.

// dropDehydrated deletes the user's dehydrated device, if any, and returns its ID.
func dropDehydrated(ctx context.Context, tx *sql.Tx, user id.UserID) (id.DeviceID, error) {
	var dev id.DeviceID
	err := tx.QueryRowContext(ctx, `SELECT device_id FROM dehydrated_devices WHERE user_id = $1`, user).Scan(&dev)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2`, user, dev); err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE user_id = $1 AND device_id = $2`, user, dev); err != nil {
		return "", err
	}
	return dev, deleteDeviceKeys(ctx, tx, user, []id.DeviceID{dev}, "")
}

// SetDehydratedDevice implements storage.KeyStore.
func (s *Store) SetDehydratedDevice(ctx context.Context, user id.UserID, deviceID id.DeviceID, displayName string, data json.RawMessage, keys storage.KeyUpload) error {
	return s.authWrite(ctx, func(tx *sql.Tx) error {
		if _, err := dropDehydrated(ctx, tx, user); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices WHERE user_id = $1 AND device_id = $2`, user, deviceID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return storage.ErrConflict
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO devices (user_id, device_id, display_name) VALUES ($1, $2, $3)`, user, deviceID, displayName); err != nil {
			return Conflict(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO dehydrated_devices (user_id, device_id, device_data) VALUES ($1, $2, $3)`, user, deviceID, string(data)); err != nil {
			return Conflict(err)
		}
		keys.UserID, keys.DeviceID = user, deviceID
		_, err := uploadKeysTx(ctx, tx, keys)
		return err
	})
}

// GetDehydratedDevice implements storage.KeyStore.
func (s *Store) GetDehydratedDevice(ctx context.Context, user id.UserID) (id.DeviceID, json.RawMessage, error) {
	var dev id.DeviceID
	var data string
	err := s.db.r.QueryRowContext(ctx, `SELECT device_id, device_data FROM dehydrated_devices WHERE user_id = $1`, user).Scan(&dev, &data)
	if err != nil {
		return "", nil, NotFound(err)
	}
	return dev, json.RawMessage(data), nil
}

// DeleteDehydratedDevice implements storage.KeyStore.
func (s *Store) DeleteDehydratedDevice(ctx context.Context, user id.UserID) (id.DeviceID, error) {
	var dev id.DeviceID
	err := s.authWrite(ctx, func(tx *sql.Tx) (err error) {
		if dev, err = dropDehydrated(ctx, tx, user); err == nil && dev == "" {
			err = storage.ErrNotFound
		}
		return err
	})
	return dev, err
}

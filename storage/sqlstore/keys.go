package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

var _ storage.KeyStore = (*Store)(nil)

// Stream names in e2ee_streams.
const (
	streamDeviceList = "device_list"
	streamToDevice   = "to_device"
)

// markDeviceListChanged records that user's devices or keys changed, for
// everyone who shares a room with them.
func markDeviceListChanged(ctx context.Context, tx *sql.Tx, users ...id.UserID) (int64, error) {
	pos, err := nextStreamPos(ctx, tx, streamDeviceList)
	if err != nil {
		return 0, err
	}
	for _, u := range users {
		if _, err := tx.ExecContext(ctx, `INSERT INTO device_list_changes (pos, user_id) VALUES ($1, $2)`, pos, u); err != nil {
			return 0, err
		}
	}
	return pos, nil
}

// deleteDeviceKeys removes the keys of deleted devices (deviceIDs nil: every
// device of user except keep) and records the device-list change.
func deleteDeviceKeys(ctx context.Context, tx *sql.Tx, user id.UserID, deviceIDs []id.DeviceID, keep id.DeviceID) error {
	tables := []string{"device_keys", "one_time_keys", "fallback_keys", "to_device_messages", "dehydrated_devices"}
	for _, t := range tables {
		if deviceIDs == nil {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+t+` WHERE user_id = $1 AND device_id <> $2`, user, keep); err != nil {
				return err
			}
			continue
		}
		for _, d := range deviceIDs {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+t+` WHERE user_id = $1 AND device_id = $2`, user, d); err != nil {
				return err
			}
		}
	}
	_, err := markDeviceListChanged(ctx, tx, user)
	return err
}

func splitKeyID(keyID string) (alg, name string) {
	alg, name, _ = strings.Cut(keyID, ":")
	return alg, name
}

// UploadKeys implements storage.KeyStore.
func (s *Store) UploadKeys(ctx context.Context, u storage.KeyUpload) (map[string]int, int64, error) {
	var dlPos int64
	err := s.db.Write(ctx, func(tx *sql.Tx) (err error) {
		dlPos, err = uploadKeysTx(ctx, tx, u)
		return err
	})
	s.keyCounts.invalidate()
	if err != nil {
		return nil, 0, err
	}
	counts, err := s.OneTimeKeyCounts(ctx, u.UserID, u.DeviceID)
	return counts, dlPos, err
}

// uploadKeysTx stores an upload inside tx; it returns the device-list
// position when the device keys changed, else 0.
func uploadKeysTx(ctx context.Context, tx *sql.Tx, u storage.KeyUpload) (int64, error) {
	var dlPos int64
	if u.DeviceKeys != nil {
		var old string
		err := tx.QueryRowContext(ctx, `SELECT key_json FROM device_keys WHERE user_id = $1 AND device_id = $2`, u.UserID, u.DeviceID).Scan(&old)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, err
		}
		if old != string(u.DeviceKeys) {
			if _, err := tx.ExecContext(ctx, `INSERT INTO device_keys (user_id, device_id, key_json) VALUES ($1, $2, $3)
				ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json`, u.UserID, u.DeviceID, string(u.DeviceKeys)); err != nil {
				return 0, err
			}
			if dlPos, err = markDeviceListChanged(ctx, tx, u.UserID); err != nil {
				return 0, err
			}
		}
	}
	if len(u.OneTimeKeys) > 0 {
		// Claims hand keys out in upload order (MSC4225): this upload's keys
		// come after every key the device uploaded before.
		var seq int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(upload_seq), 0) + 1 FROM one_time_keys WHERE user_id = $1 AND device_id = $2`,
			u.UserID, u.DeviceID).Scan(&seq); err != nil {
			return 0, err
		}
		for keyID, key := range u.OneTimeKeys {
			alg, name := splitKeyID(keyID)
			if _, err := tx.ExecContext(ctx, `INSERT INTO one_time_keys (user_id, device_id, algorithm, key_id, key_json, upload_seq) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (user_id, device_id, algorithm, key_id) DO NOTHING`, u.UserID, u.DeviceID, alg, name, string(key), seq); err != nil {
				return 0, err
			}
		}
	}
	for keyID, key := range u.FallbackKeys {
		alg, name := splitKeyID(keyID)
		// Re-uploading the same key keeps its used flag; a new key is unused.
		if _, err := tx.ExecContext(ctx, `INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, key_json, used) VALUES ($1, $2, $3, $4, $5, FALSE)
			ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET key_id = excluded.key_id, key_json = excluded.key_json,
			used = CASE WHEN fallback_keys.key_id = excluded.key_id AND fallback_keys.key_json = excluded.key_json THEN fallback_keys.used ELSE FALSE END`,
			u.UserID, u.DeviceID, alg, name, string(key)); err != nil {
			return 0, err
		}
	}
	return dlPos, nil
}

// DeviceKeys implements storage.KeyStore. Users whose whole device list is
// wanted are read in chunks of 500 with one query per chunk.
func (s *Store) DeviceKeys(ctx context.Context, query map[id.UserID][]id.DeviceID) (map[id.UserID]map[id.DeviceID]storage.DeviceKey, error) {
	out := make(map[id.UserID]map[id.DeviceID]storage.DeviceKey, len(query))
	const sel = `SELECT k.user_id, k.device_id, k.key_json, d.display_name FROM device_keys k
		JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id WHERE `
	scan := func(q string, args ...any) error {
		rows, err := s.db.r.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var user id.UserID
			var dev id.DeviceID
			var js, name string
			if err := rows.Scan(&user, &dev, &js, &name); err != nil {
				return err
			}
			if out[user] == nil {
				out[user] = map[id.DeviceID]storage.DeviceKey{}
			}
			out[user][dev] = storage.DeviceKey{JSON: json.RawMessage(js), DisplayName: name}
		}
		return rows.Err()
	}
	var whole []any
	for user, devices := range query {
		out[user] = map[id.DeviceID]storage.DeviceKey{}
		if len(devices) == 0 {
			whole = append(whole, user)
			continue
		}
		args := []any{user}
		for _, d := range devices {
			args = append(args, d)
		}
		if err := scan(sel+`k.user_id = $1 AND k.device_id IN `+In(2, len(devices)), args...); err != nil {
			return nil, err
		}
	}
	for start := 0; start < len(whole); start += 500 {
		chunk := whole[start:min(start+500, len(whole))]
		if err := scan(sel+`k.user_id IN `+In(1, len(chunk)), chunk...); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// OneTimeKeyCounts implements storage.KeyStore.
func (s *Store) OneTimeKeyCounts(ctx context.Context, user id.UserID, device id.DeviceID) (map[string]int, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT algorithm, COUNT(*) FROM one_time_keys WHERE user_id = $1 AND device_id = $2 GROUP BY algorithm`, user, device)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var alg string
		var n int
		if err := rows.Scan(&alg, &n); err != nil {
			return nil, err
		}
		counts[alg] = n
	}
	return counts, rows.Err()
}

// DeviceKeyCounts implements storage.KeyStore. On SQLite the counts are
// cached until keys are written or devices deleted (keycounts.go).
func (s *Store) DeviceKeyCounts(ctx context.Context, user id.UserID, device id.DeviceID) (map[string]int, []string, error) {
	k := keyCountKey{user, device}
	var gen uint64
	if s.db.Dialect == SQLite {
		e, g, ok := s.keyCounts.get(k)
		if ok {
			return e.counts, e.fallback, nil
		}
		gen = g
	}
	counts, fallback, err := s.deviceKeyCounts(ctx, user, device)
	if err == nil && s.db.Dialect == SQLite {
		s.keyCounts.put(k, keyCountEntry{counts, fallback}, gen)
	}
	return counts, fallback, err
}

func (s *Store) deviceKeyCounts(ctx context.Context, user id.UserID, device id.DeviceID) (map[string]int, []string, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT 0, algorithm, COUNT(*) FROM one_time_keys WHERE user_id = $1 AND device_id = $2 GROUP BY algorithm
		UNION ALL SELECT 1, algorithm, 0 FROM fallback_keys WHERE user_id = $1 AND device_id = $2 AND NOT used`, user, device)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	counts, fallback := map[string]int{}, []string{}
	for rows.Next() {
		var kind, n int
		var alg string
		if err := rows.Scan(&kind, &alg, &n); err != nil {
			return nil, nil, err
		}
		if kind == 0 {
			counts[alg] = n
		} else {
			fallback = append(fallback, alg)
		}
	}
	slices.Sort(fallback)
	return counts, fallback, rows.Err()
}

// UnusedFallbackKeyTypes implements storage.KeyStore.
func (s *Store) UnusedFallbackKeyTypes(ctx context.Context, user id.UserID, device id.DeviceID) ([]string, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT algorithm FROM fallback_keys WHERE user_id = $1 AND device_id = $2 AND NOT used ORDER BY algorithm`, user, device)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var alg string
		if err := rows.Scan(&alg); err != nil {
			return nil, err
		}
		out = append(out, alg)
	}
	return out, rows.Err()
}

// ClaimKeys implements storage.KeyStore.
func (s *Store) ClaimKeys(ctx context.Context, query map[id.UserID]map[id.DeviceID]string) (map[id.UserID]map[id.DeviceID]storage.ClaimedKey, error) {
	out := map[id.UserID]map[id.DeviceID]storage.ClaimedKey{}
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		clear(out)
		for user, devices := range query {
			for device, alg := range devices {
				key, ok, err := claimOne(ctx, tx, user, device, alg)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				if out[user] == nil {
					out[user] = map[id.DeviceID]storage.ClaimedKey{}
				}
				out[user][device] = key
			}
		}
		return nil
	})
	s.keyCounts.invalidate()
	return out, err
}

// claimOne takes one one-time key, or the fallback key. The DELETE of the
// chosen row is checked: on PostgreSQL a concurrent claimer may have taken it
// between the SELECT and the DELETE, and then the next key is tried.
func claimOne(ctx context.Context, tx *sql.Tx, user id.UserID, device id.DeviceID, alg string) (storage.ClaimedKey, bool, error) {
	for {
		var name, js string
		err := tx.QueryRowContext(ctx, `SELECT key_id, key_json FROM one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3
			ORDER BY upload_seq, key_id LIMIT 1`, user, device, alg).Scan(&name, &js)
		if errors.Is(err, sql.ErrNoRows) {
			break
		} else if err != nil {
			return storage.ClaimedKey{}, false, err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 AND key_id = $4`, user, device, alg, name)
		if err != nil {
			return storage.ClaimedKey{}, false, err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return storage.ClaimedKey{KeyID: alg + ":" + name, Key: json.RawMessage(js)}, true, nil
		}
	}
	var name, js string
	err := tx.QueryRowContext(ctx, `UPDATE fallback_keys SET used = TRUE WHERE user_id = $1 AND device_id = $2 AND algorithm = $3
		RETURNING key_id, key_json`, user, device, alg).Scan(&name, &js)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ClaimedKey{}, false, nil
	} else if err != nil {
		return storage.ClaimedKey{}, false, err
	}
	return storage.ClaimedKey{KeyID: alg + ":" + name, Key: json.RawMessage(js)}, true, nil
}

// CrossSigningKeys implements storage.KeyStore.
func (s *Store) CrossSigningKeys(ctx context.Context, users []id.UserID) (map[id.UserID]map[string]json.RawMessage, error) {
	out := map[id.UserID]map[string]json.RawMessage{}
	for start := 0; start < len(users); start += 500 {
		chunk := userArgs(users[start:min(start+500, len(users))])
		rows, err := s.db.r.QueryContext(ctx, `SELECT user_id, key_type, key_json FROM cross_signing_keys WHERE user_id IN `+In(1, len(chunk)), chunk...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var u id.UserID
			var typ, js string
			if err := rows.Scan(&u, &typ, &js); err != nil {
				rows.Close()
				return nil, err
			}
			if out[u] == nil {
				out[u] = map[string]json.RawMessage{}
			}
			out[u][typ] = json.RawMessage(js)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func userArgs(users []id.UserID) []any {
	out := make([]any, len(users))
	for i, u := range users {
		out[i] = u
	}
	return out
}

// SetCrossSigningKeys implements storage.KeyStore. A user-signing key is
// private to its owner: when it is the only key uploaded, only the owner's
// own devices are told.
func (s *Store) SetCrossSigningKeys(ctx context.Context, user id.UserID, keys map[string]json.RawMessage) (int64, error) {
	var pos int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		for typ, js := range keys {
			if _, err := tx.ExecContext(ctx, `INSERT INTO cross_signing_keys (user_id, key_type, key_json) VALUES ($1, $2, $3)
				ON CONFLICT (user_id, key_type) DO UPDATE SET key_json = excluded.key_json`, user, typ, string(js)); err != nil {
				return err
			}
		}
		if _, ok := keys["master"]; ok {
			// Signatures made by or on the old master key no longer count.
			if _, err := tx.ExecContext(ctx, `DELETE FROM key_signatures WHERE target_user_id = $1 OR signer_user_id = $1`, user); err != nil {
				return err
			}
		}
		var err error
		if _, private := keys["user_signing"]; private && len(keys) == 1 {
			if pos, err = nextStreamPos(ctx, tx, streamDeviceList); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO device_list_changes (pos, user_id, observer_id) VALUES ($1, $2, $2)`, pos, user)
			return err
		}
		pos, err = markDeviceListChanged(ctx, tx, user)
		return err
	})
	return pos, err
}

// KeySignatures implements storage.KeyStore.
func (s *Store) KeySignatures(ctx context.Context, users []id.UserID) ([]storage.KeySignature, error) {
	var out []storage.KeySignature
	for start := 0; start < len(users); start += 500 {
		chunk := userArgs(users[start:min(start+500, len(users))])
		rows, err := s.db.r.QueryContext(ctx, `SELECT target_user_id, target_key_id, signer_user_id, signer_key_id, signature
			FROM key_signatures WHERE target_user_id IN `+In(1, len(chunk)), chunk...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var ks storage.KeySignature
			if err := rows.Scan(&ks.TargetUser, &ks.TargetKey, &ks.SignerUser, &ks.SignerKey, &ks.Signature); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, ks)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// AddKeySignatures implements storage.KeyStore. A signature by the key's
// owner changes what everyone sees of the owner's keys; a signature by
// another user (with their user-signing key) is private to the signer, so
// only the signer is told that the target changed.
func (s *Store) AddKeySignatures(ctx context.Context, sigs []storage.KeySignature) (int64, error) {
	var pos int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		if len(sigs) == 0 {
			return nil
		}
		var err error
		if pos, err = nextStreamPos(ctx, tx, streamDeviceList); err != nil {
			return err
		}
		type change struct{ user, observer id.UserID }
		seen := map[change]bool{}
		for _, ks := range sigs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO key_signatures (target_user_id, target_key_id, signer_user_id, signer_key_id, signature)
				VALUES ($1, $2, $3, $4, $5) ON CONFLICT (target_user_id, target_key_id, signer_user_id, signer_key_id) DO UPDATE SET signature = excluded.signature`,
				ks.TargetUser, ks.TargetKey, ks.SignerUser, ks.SignerKey, ks.Signature); err != nil {
				return err
			}
			c := change{user: ks.TargetUser}
			if ks.SignerUser != ks.TargetUser {
				c.observer = ks.SignerUser
			}
			if seen[c] {
				continue
			}
			seen[c] = true
			if _, err := tx.ExecContext(ctx, `INSERT INTO device_list_changes (pos, user_id, observer_id) VALUES ($1, $2, $3)`, pos, c.user, c.observer); err != nil {
				return err
			}
		}
		return nil
	})
	return pos, err
}

// DeviceListPosition implements storage.KeyStore.
func (s *Store) DeviceListPosition(ctx context.Context) (int64, error) {
	return s.streamPos(ctx, streamDeviceList)
}

// DeviceListChanges implements storage.KeyStore.
func (s *Store) DeviceListChanges(ctx context.Context, from, to int64, observer id.UserID) ([]storage.DeviceListChange, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT pos, user_id, observer_id, kind FROM device_list_changes
		WHERE pos > $1 AND pos <= $2 AND observer_id IN ('', $3) ORDER BY pos`, from, to, observer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.DeviceListChange
	for rows.Next() {
		var c storage.DeviceListChange
		var kind string
		if err := rows.Scan(&c.Pos, &c.UserID, &c.Observer, &kind); err != nil {
			return nil, err
		}
		c.Left = kind == "left"
		out = append(out, c)
	}
	return out, rows.Err()
}

// LastDeviceListChange implements storage.KeyStore.
func (s *Store) LastDeviceListChange(ctx context.Context, user id.UserID, before int64) (int64, error) {
	var pos sql.NullInt64
	err := s.db.r.QueryRowContext(ctx, `SELECT MAX(pos) FROM device_list_changes WHERE user_id = $1 AND observer_id = '' AND pos < $2`,
		user, before).Scan(&pos)
	return pos.Int64, err
}

// AddDeviceListChanges implements storage.KeyStore.
func (s *Store) AddDeviceListChanges(ctx context.Context, changes []storage.DeviceListChange) (int64, error) {
	var pos int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		if pos, err = nextStreamPos(ctx, tx, streamDeviceList); err != nil {
			return err
		}
		for _, c := range changes {
			kind := "changed"
			if c.Left {
				kind = "left"
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO device_list_changes (pos, user_id, observer_id, kind) VALUES ($1, $2, $3, $4)`,
				pos, c.UserID, c.Observer, kind); err != nil {
				return err
			}
		}
		return nil
	})
	return pos, err
}

// ToDevicePosition implements storage.KeyStore.
func (s *Store) ToDevicePosition(ctx context.Context) (int64, error) {
	return s.streamPos(ctx, streamToDevice)
}

// SendToDevice implements storage.KeyStore.
func (s *Store) SendToDevice(ctx context.Context, sender id.UserID, senderDevice id.DeviceID, txnID string, msgs []storage.ToDeviceMessage) (int64, bool, error) {
	var pos int64
	dup := false
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		now := time.Now().UnixMilli()
		// Transaction IDs are remembered for a day, as clients retry within seconds.
		if _, err := tx.ExecContext(ctx, `DELETE FROM to_device_txns WHERE user_id = $1 AND device_id = $2 AND created_ts < $3`,
			sender, senderDevice, now-24*3600*1000); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO to_device_txns (user_id, device_id, txn_id, created_ts) VALUES ($1, $2, $3, $4)
			ON CONFLICT (user_id, device_id, txn_id) DO NOTHING`, sender, senderDevice, txnID, now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			dup = true
			return nil
		}
		if len(msgs) == 0 {
			return nil
		}
		if pos, err = nextStreamPos(ctx, tx, streamToDevice); err != nil {
			return err
		}
		for _, m := range msgs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO to_device_messages (pos, user_id, device_id, sender, type, content) VALUES ($1, $2, $3, $4, $5, $6)`,
				pos, m.UserID, m.DeviceID, sender, m.Type, string(m.Content)); err != nil {
				return err
			}
		}
		return nil
	})
	return pos, dup, err
}

// AckToDevice implements storage.KeyStore.
func (s *Store) AckToDevice(ctx context.Context, user id.UserID, device id.DeviceID, upTo int64) error {
	// Skip the write transaction when there is nothing to delete: this runs on every sync.
	var n int
	if err := s.db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM to_device_messages WHERE user_id = $1 AND device_id = $2 AND pos <= $3`,
		user, device, upTo).Scan(&n); err != nil || n == 0 {
		return err
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM to_device_messages WHERE user_id = $1 AND device_id = $2 AND pos <= $3`, user, device, upTo)
		return err
	})
}

// ToDeviceMessages implements storage.KeyStore.
func (s *Store) ToDeviceMessages(ctx context.Context, user id.UserID, device id.DeviceID, from, to int64, limit int) ([]storage.ToDeviceMessage, error) {
	q := `SELECT pos, sender, type, content FROM to_device_messages WHERE user_id = $1 AND device_id = $2 AND pos > $3 AND pos <= $4 ORDER BY pos`
	args := []any{user, device, from, to}
	if limit > 0 {
		q += ` LIMIT $5`
		args = append(args, limit)
	}
	rows, err := s.db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.ToDeviceMessage
	for rows.Next() {
		m := storage.ToDeviceMessage{UserID: user, DeviceID: device}
		var content string
		if err := rows.Scan(&m.Pos, &m.Sender, &m.Type, &content); err != nil {
			return nil, err
		}
		m.Content = json.RawMessage(content)
		out = append(out, m)
	}
	return out, rows.Err()
}

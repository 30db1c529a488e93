package sqlstore

import (
	"context"
	"database/sql"

	"parley/storage"
)

// StoreServerKeys implements storage.FederationStore.
func (s *Store) StoreServerKeys(ctx context.Context, serverName string, response []byte, validUntilTS, fetchedTS int64, keys []storage.ServerKey) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO server_key_responses (server_name, response, valid_until_ts, fetched_ts) VALUES ($1, $2, $3, $4)
			ON CONFLICT (server_name) DO UPDATE SET response = excluded.response, valid_until_ts = excluded.valid_until_ts, fetched_ts = excluded.fetched_ts`,
			serverName, string(response), validUntilTS, fetchedTS); err != nil {
			return err
		}
		for _, k := range keys {
			// A key once expired stays expired; valid_until_ts only grows.
			if _, err := tx.ExecContext(ctx, `INSERT INTO server_keys (server_name, key_id, public_key, valid_until_ts, expired_ts) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (server_name, key_id) DO UPDATE SET
					valid_until_ts = CASE WHEN excluded.valid_until_ts > server_keys.valid_until_ts THEN excluded.valid_until_ts ELSE server_keys.valid_until_ts END,
					expired_ts = CASE WHEN server_keys.expired_ts <> 0 THEN server_keys.expired_ts ELSE excluded.expired_ts END`,
				k.ServerName, k.KeyID, k.PublicKey, k.ValidUntilTS, k.ExpiredTS); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM server_key_errors WHERE server_name = $1`, serverName)
		return err
	})
}

// ServerKeyResponse implements storage.FederationStore.
func (s *Store) ServerKeyResponse(ctx context.Context, serverName string) ([]byte, int64, int64, error) {
	var resp string
	var valid, fetched int64
	err := s.db.r.QueryRowContext(ctx, `SELECT response, valid_until_ts, fetched_ts FROM server_key_responses WHERE server_name = $1`, serverName).
		Scan(&resp, &valid, &fetched)
	if err != nil {
		return nil, 0, 0, NotFound(err)
	}
	return []byte(resp), valid, fetched, nil
}

// ServerKeys implements storage.FederationStore.
func (s *Store) ServerKeys(ctx context.Context, serverName string) ([]storage.ServerKey, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT server_name, key_id, public_key, valid_until_ts, expired_ts FROM server_keys WHERE server_name = $1 ORDER BY key_id`, serverName)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.ServerKey
	for rows.Next() {
		var k storage.ServerKey
		if err := rows.Scan(&k.ServerName, &k.KeyID, &k.PublicKey, &k.ValidUntilTS, &k.ExpiredTS); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// StoreKeyFetchError implements storage.FederationStore.
func (s *Store) StoreKeyFetchError(ctx context.Context, serverName, message string, ts int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO server_key_errors (server_name, failures, last_ts, message) VALUES ($1, 1, $2, $3)
			ON CONFLICT (server_name) DO UPDATE SET failures = server_key_errors.failures + 1, last_ts = excluded.last_ts, message = excluded.message`,
			serverName, ts, message)
		return err
	})
}

// GetKeyFetchError implements storage.FederationStore.
func (s *Store) GetKeyFetchError(ctx context.Context, serverName string) (*storage.KeyFetchError, error) {
	var e storage.KeyFetchError
	err := s.db.r.QueryRowContext(ctx, `SELECT failures, last_ts, message FROM server_key_errors WHERE server_name = $1`, serverName).
		Scan(&e.Failures, &e.LastTS, &e.Message)
	if err != nil {
		return nil, NotFound(err)
	}
	return &e, nil
}

// FederationTxn implements storage.FederationStore.
func (s *Store) FederationTxn(ctx context.Context, origin, txnID string) ([]byte, error) {
	var resp string
	if err := s.db.r.QueryRowContext(ctx, `SELECT response FROM federation_txns WHERE origin = $1 AND txn_id = $2`, origin, txnID).Scan(&resp); err != nil {
		return nil, NotFound(err)
	}
	return []byte(resp), nil
}

// StoreFederationTxn implements storage.FederationStore.
func (s *Store) StoreFederationTxn(ctx context.Context, origin, txnID string, response []byte, ts int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO federation_txns (origin, txn_id, response, received_ts) VALUES ($1, $2, $3, $4)
			ON CONFLICT (origin, txn_id) DO NOTHING`, origin, txnID, string(response), ts)
		return err
	})
}

// EnqueueOutbound implements storage.FederationStore.
func (s *Store) EnqueueOutbound(ctx context.Context, destinations []string, kind string, payload []byte, ts int64) error {
	if len(destinations) == 0 {
		return nil
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		for _, d := range destinations {
			if _, err := tx.ExecContext(ctx, `INSERT INTO outbound_queue (destination, kind, payload, created_ts) VALUES ($1, $2, $3, $4)`,
				d, kind, string(payload), ts); err != nil {
				return err
			}
		}
		return nil
	})
}

// PendingOutbound implements storage.FederationStore.
func (s *Store) PendingOutbound(ctx context.Context, destination, kind string, limit int) ([]storage.QueueItem, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT id, destination, kind, payload FROM outbound_queue WHERE destination = $1 AND kind = $2 ORDER BY id LIMIT $3`,
		destination, kind, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.QueueItem
	for rows.Next() {
		var it storage.QueueItem
		var payload string
		if err := rows.Scan(&it.ID, &it.Destination, &it.Kind, &payload); err != nil {
			return nil, err
		}
		it.Payload = []byte(payload)
		out = append(out, it)
	}
	return out, rows.Err()
}

// DeleteOutbound implements storage.FederationStore.
func (s *Store) DeleteOutbound(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		for start := 0; start < len(ids); start += 500 {
			chunk := ids[start:min(start+500, len(ids))]
			args := make([]any, len(chunk))
			for i, v := range chunk {
				args[i] = v
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM outbound_queue WHERE id IN `+In(1, len(chunk)), args...); err != nil {
				return err
			}
		}
		return nil
	})
}

// OutboundDestinations implements storage.FederationStore.
func (s *Store) OutboundDestinations(ctx context.Context) ([]string, error) {
	return queryColumn[string](ctx, s.db.r, `SELECT DISTINCT destination FROM outbound_queue ORDER BY destination`)
}

package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"strconv"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

var _ storage.FilterStore = (*Store)(nil)

// CreateFilter implements storage.FilterStore.
func (s *Store) CreateFilter(ctx context.Context, user id.UserID, filter json.RawMessage) (string, error) {
	var fid int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO filters (user_id, filter) VALUES ($1, $2) RETURNING filter_id`,
			string(user), string(filter)).Scan(&fid)
	})
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(fid, 10), nil
}

// GetFilter implements storage.FilterStore.
func (s *Store) GetFilter(ctx context.Context, user id.UserID, filterID string) (json.RawMessage, error) {
	fid, err := strconv.ParseInt(filterID, 10, 64)
	if err != nil {
		return nil, storage.ErrNotFound
	}
	var f string
	err = s.db.r.QueryRowContext(ctx, `SELECT filter FROM filters WHERE filter_id = $1 AND user_id = $2`, fid, string(user)).Scan(&f)
	if err != nil {
		return nil, NotFound(err)
	}
	return json.RawMessage(f), nil
}

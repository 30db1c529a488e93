package sqlstore

import (
	"context"
	"database/sql"
	"errors"
)

// Names of the persistent stream counters in stream_positions.
const (
	streamAccountData = "account_data"
	streamReceipt     = "receipt"
	streamNotif       = "notif"
	// streamEventsFloor is the newest event position when events were last
	// purged by PurgeRoom; MaxStreamPos never answers less.
	streamEventsFloor = "events_floor"
)

// nextStreamPos bumps the named stream inside tx and returns the new position.
// The row lock it takes (on PostgreSQL) serialises writers of the stream until
// commit, so readers never see a position before the rows written at it.
func nextStreamPos(ctx context.Context, tx *sql.Tx, name string) (int64, error) {
	var pos int64
	err := tx.QueryRowContext(ctx, `INSERT INTO stream_positions (name, pos) VALUES ($1, 1)
		ON CONFLICT (name) DO UPDATE SET pos = stream_positions.pos + 1 RETURNING pos`, name).Scan(&pos)
	return pos, err
}

// streamPos returns the latest committed position of the named stream.
func (s *Store) streamPos(ctx context.Context, name string) (int64, error) {
	var pos int64
	err := s.db.r.QueryRowContext(ctx, `SELECT pos FROM stream_positions WHERE name = $1`, name).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return pos, err
}

package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"parley/storage"
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

// StreamPositions implements storage.PositionStore: the same answers as
// MaxStreamPos and each stream's Position method, in one query.
func (s *Store) StreamPositions(ctx context.Context) (storage.Positions, error) {
	var p storage.Positions
	rows, err := s.db.r.QueryContext(ctx, `SELECT name, pos FROM stream_positions
		UNION ALL SELECT '', COALESCE(MAX(stream_pos), 0) FROM events`)
	if err != nil {
		return p, err
	}
	defer rows.Close()
	var floor int64
	for rows.Next() {
		var name string
		var pos int64
		if err := rows.Scan(&name, &pos); err != nil {
			return p, err
		}
		switch name {
		case "":
			p.Events = pos
		case streamEventsFloor:
			floor = pos
		case streamAccountData:
			p.AccountData = pos
		case streamReceipt:
			p.Receipt = pos
		case streamNotif:
			p.Notif = pos
		case streamToDevice:
			p.ToDevice = pos
		case streamDeviceList:
			p.DeviceList = pos
		}
	}
	p.Events = max(p.Events, floor)
	return p, rows.Err()
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

package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// eventWriteLock is the PostgreSQL advisory lock key that serialises event
// writes, so that stream positions become visible in the order they were
// assigned even when several processes share the database.
const eventWriteLock = 7283713

// snapshotEvery bounds the length of a state group's delta chain: a group
// whose predecessor's chain is this long is stored as a full snapshot.
const snapshotEvery = 32

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

const eventCols = `stream_pos, event_id, room_id, type, state_key, sender, depth, origin_ts, membership, pdu, unsigned,
	txn_id, device_id, rejected, outlier, soft_failed, redacted, state_before, state_after`

func scanEvent(sc interface{ Scan(...any) error }) (*storage.Event, error) {
	var ev storage.Event
	var stateKey, membership sql.NullString
	var pdu, unsigned string
	err := sc.Scan(&ev.StreamPos, &ev.EventID, &ev.RoomID, &ev.Type, &stateKey, &ev.Sender, &ev.Depth, &ev.OriginTS,
		&membership, &pdu, &unsigned, &ev.TxnID, &ev.DeviceID, &ev.Rejected, &ev.Outlier, &ev.SoftFailed, &ev.Redacted,
		&ev.StateBefore, &ev.StateAfter)
	if err != nil {
		return nil, err
	}
	if stateKey.Valid {
		sk := stateKey.String
		ev.StateKey = &sk
	}
	ev.Membership = membership.String
	ev.JSON = []byte(pdu)
	if unsigned != "" {
		ev.Unsigned = []byte(unsigned)
	}
	return &ev, nil
}

func scanEvents(rows *sql.Rows, err error) ([]*storage.Event, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*storage.Event
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

func nullString(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// StoreEvents implements storage.RoomStore.
func (s *Store) StoreEvents(ctx context.Context, req storage.StoreEventsRequest) ([]storage.StoredEvent, error) {
	out := make([]storage.StoredEvent, len(req.Events))
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		if s.db.Dialect == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, eventWriteLock); err != nil {
				return fmt.Errorf("lock event writes: %w", err)
			}
		}
		if r := req.NewRoom; r != nil {
			_, err := tx.ExecContext(ctx, `INSERT INTO rooms (room_id, room_version, creator, created_ts, is_public) VALUES ($1, $2, $3, $4, $5)`,
				r.RoomID, r.Version, r.Creator, r.CreatedTS, r.IsPublic)
			if err != nil {
				return Conflict(err)
			}
		}
		var group int64
		if err := tx.QueryRowContext(ctx, `SELECT current_group FROM rooms WHERE room_id = $1`, req.RoomID).Scan(&group); err != nil {
			return fmt.Errorf("load room %s: %w", req.RoomID, NotFound(err))
		}
		startGroup := group
		if req.ExpectExtremities != nil {
			if err := checkExtremities(ctx, tx, req.RoomID, req.ExpectExtremities); err != nil {
				return err
			}
		}
		applied := req.InitialState == nil
		for i, ev := range req.Events {
			if !applied && !ev.Outlier {
				g, err := s.applyInitialState(ctx, tx, req.RoomID, req.InitialState)
				if err != nil {
					return fmt.Errorf("initial state: %w", err)
				}
				group, applied = g, true
			}
			stored, err := s.storeEvent(ctx, tx, ev, group)
			if err != nil {
				return fmt.Errorf("store %s: %w", ev.EventID, err)
			}
			out[i] = stored
			if len(ev.Notifications) > 0 {
				for j := range ev.Notifications {
					ev.Notifications[j].EventPos = stored.StreamPos
				}
				if err := insertNotifications(ctx, tx, ev.Notifications, nil); err != nil {
					return err
				}
			}
			if ev.UpdateCurrentState {
				group = stored.StateAfter
			}
		}
		if !applied {
			g, err := s.applyInitialState(ctx, tx, req.RoomID, req.InitialState)
			if err != nil {
				return fmt.Errorf("initial state: %w", err)
			}
			group = g
		}
		if group != startGroup {
			if _, err := tx.ExecContext(ctx, `UPDATE rooms SET current_group = $1 WHERE room_id = $2`, group, req.RoomID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) storeEvent(ctx context.Context, tx *sql.Tx, ev *storage.NewEvent, before int64) (storage.StoredEvent, error) {
	accepted := !ev.Rejected && !ev.Outlier && !ev.SoftFailed
	res := storage.StoredEvent{StateBefore: before, StateAfter: before}
	if ev.StateKey != nil && accepted {
		g, err := s.newStateGroup(ctx, tx, ev.RoomID, before, storage.StateKeyTuple{Type: ev.Type, StateKey: *ev.StateKey}, ev.EventID)
		if err != nil {
			return res, err
		}
		res.StateAfter = g
	}
	err := tx.QueryRowContext(ctx, `INSERT INTO events (event_id, room_id, type, state_key, sender, depth, origin_ts, membership, pdu, unsigned,
		txn_id, device_id, rejected, outlier, soft_failed, redacted, state_before, state_after)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING stream_pos`,
		ev.EventID, ev.RoomID, ev.Type, nullString(ev.StateKey), ev.Sender, ev.Depth, ev.OriginTS, nullIfEmpty(ev.Membership),
		string(ev.JSON), string(ev.Unsigned), ev.TxnID, ev.DeviceID, ev.Rejected, ev.Outlier, ev.SoftFailed, ev.Redacted,
		res.StateBefore, res.StateAfter).Scan(&res.StreamPos)
	if err != nil {
		return res, Conflict(err)
	}
	for _, prev := range ev.PrevEvents {
		if _, err := tx.ExecContext(ctx, `INSERT INTO event_edges (event_id, prev_event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, ev.EventID, prev); err != nil {
			return res, err
		}
	}
	if ev.TxnID != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO txn_ids (user_id, device_id, scope, txn_id, event_id) VALUES ($1, $2, $3, $4, $5)`,
			ev.Sender, ev.DeviceID, ev.TxnScope, ev.TxnID, ev.EventID); err != nil {
			return res, Conflict(err)
		}
	}
	if !accepted {
		return res, nil
	}
	if len(ev.PrevEvents) > 0 {
		args := []any{ev.RoomID}
		for _, p := range ev.PrevEvents {
			args = append(args, p)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM forward_extremities WHERE room_id = $1 AND event_id IN `+In(2, len(ev.PrevEvents)), args...); err != nil {
			return res, err
		}
	}
	// An event that is itself a prev_event of a known event is not an extremity.
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM event_edges WHERE prev_event_id = $1`, ev.EventID).Scan(&n); err != nil {
		return res, err
	}
	if n == 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO forward_extremities (room_id, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, ev.RoomID, ev.EventID); err != nil {
			return res, err
		}
	}
	if err := s.indexSearch(ctx, tx, ev, res.StreamPos); err != nil {
		return res, err
	}
	if err := indexRelation(ctx, tx, ev, res.StreamPos); err != nil {
		return res, err
	}
	if ev.StateKey != nil && ev.UpdateCurrentState {
		_, err := tx.ExecContext(ctx, `INSERT INTO current_state (room_id, type, state_key, event_id, stream_pos, membership) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id, stream_pos = excluded.stream_pos, membership = excluded.membership`,
			ev.RoomID, ev.Type, *ev.StateKey, ev.EventID, res.StreamPos, nullIfEmpty(ev.Membership))
		if err != nil {
			return res, err
		}
	}
	if ev.Redacts != "" && ev.RedactedJSON != nil {
		s.eventsMutated.Add(1)
		if _, err := tx.ExecContext(ctx, `UPDATE events SET pdu = $1, unsigned = $2, redacted = TRUE WHERE event_id = $3 AND room_id = $4`,
			string(ev.RedactedJSON), string(ev.RedactedUnsigned), ev.Redacts, ev.RoomID); err != nil {
			return res, err
		}
	}
	return res, nil
}

func checkExtremities(ctx context.Context, tx *sql.Tx, roomID id.RoomID, want []id.EventID) error {
	rows, err := tx.QueryContext(ctx, `SELECT event_id FROM forward_extremities WHERE room_id = $1`, roomID)
	if err != nil {
		return err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var e id.EventID
		if err := rows.Scan(&e); err != nil {
			return err
		}
		if !slices.Contains(want, e) {
			return storage.ErrStale
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n != len(want) {
		return storage.ErrStale
	}
	return nil
}

// newStateGroup stores the state "before plus (tuple → eventID)" as a delta on
// before, or as a full snapshot when before's delta chain is long.
func (s *Store) newStateGroup(ctx context.Context, tx *sql.Tx, roomID id.RoomID, before int64, tuple storage.StateKeyTuple, eventID id.EventID) (int64, error) {
	chain := -1
	if before != 0 {
		if err := tx.QueryRowContext(ctx, `SELECT chain_len FROM state_groups WHERE group_id = $1`, before).Scan(&chain); err != nil {
			return 0, fmt.Errorf("load state group %d: %w", before, err)
		}
	}
	var g int64
	if chain >= 0 && chain < snapshotEvery {
		if err := tx.QueryRowContext(ctx, `INSERT INTO state_groups (room_id, prev_group, chain_len) VALUES ($1, $2, $3) RETURNING group_id`,
			roomID, before, chain+1).Scan(&g); err != nil {
			return 0, err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO state_group_entries (group_id, type, state_key, event_id) VALUES ($1, $2, $3, $4)`,
			g, tuple.Type, tuple.StateKey, eventID)
		return g, err
	}
	state := map[storage.StateKeyTuple]id.EventID{}
	if before != 0 {
		var err error
		if state, err = stateIDs(ctx, tx, before); err != nil {
			return 0, err
		}
	}
	state[tuple] = eventID
	if err := tx.QueryRowContext(ctx, `INSERT INTO state_groups (room_id, prev_group, chain_len) VALUES ($1, NULL, 0) RETURNING group_id`,
		roomID).Scan(&g); err != nil {
		return 0, err
	}
	for k, v := range state {
		if _, err := tx.ExecContext(ctx, `INSERT INTO state_group_entries (group_id, type, state_key, event_id) VALUES ($1, $2, $3, $4)`,
			g, k.Type, k.StateKey, v); err != nil {
			return 0, err
		}
	}
	return g, nil
}

// stateIDs resolves a state group by walking its delta chain in one query.
func stateIDs(ctx context.Context, q querier, group int64) (map[storage.StateKeyTuple]id.EventID, error) {
	out := map[storage.StateKeyTuple]id.EventID{}
	if group == 0 {
		return out, nil
	}
	rows, err := q.QueryContext(ctx, `WITH RECURSIVE chain(group_id, prev_group, n) AS (
			SELECT group_id, prev_group, 0 FROM state_groups WHERE group_id = $1
			UNION ALL
			SELECT g.group_id, g.prev_group, c.n + 1 FROM state_groups g JOIN chain c ON g.group_id = c.prev_group
		)
		SELECT e.type, e.state_key, e.event_id FROM chain c JOIN state_group_entries e ON e.group_id = c.group_id ORDER BY c.n DESC`, group)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k storage.StateKeyTuple
		var ev id.EventID
		if err := rows.Scan(&k.Type, &k.StateKey, &ev); err != nil {
			return nil, err
		}
		out[k] = ev
	}
	return out, rows.Err()
}

// StateIDs implements storage.RoomStore.
func (s *Store) StateIDs(ctx context.Context, group int64) (map[storage.StateKeyTuple]id.EventID, error) {
	return stateIDs(ctx, s.db.r, group)
}

// StateEvents implements storage.RoomStore. (Two indexed queries: one that
// also joins the events and picks each key's nearest entry with a window
// function measured slower on SQLite.)
func (s *Store) StateEvents(ctx context.Context, group int64) ([]*storage.Event, error) {
	ids, err := s.StateIDs(ctx, group)
	if err != nil {
		return nil, err
	}
	list := make([]id.EventID, 0, len(ids))
	for _, v := range ids {
		list = append(list, v)
	}
	return s.GetEvents(ctx, list)
}

// GetRoom implements storage.RoomStore.
func (s *Store) GetRoom(ctx context.Context, roomID id.RoomID) (*storage.Room, error) {
	r := storage.Room{RoomID: roomID}
	err := s.db.r.QueryRowContext(ctx, `SELECT room_version, creator, created_ts, current_group, is_public FROM rooms WHERE room_id = $1`, roomID).
		Scan(&r.Version, &r.Creator, &r.CreatedTS, &r.CurrentGroup, &r.IsPublic)
	if err != nil {
		return nil, NotFound(err)
	}
	return &r, nil
}

// SetRoomPublic implements storage.RoomStore.
func (s *Store) SetRoomPublic(ctx context.Context, roomID id.RoomID, public bool) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE rooms SET is_public = $1 WHERE room_id = $2`, public, roomID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		return nil
	})
}

// ForwardExtremities implements storage.RoomStore.
func (s *Store) ForwardExtremities(ctx context.Context, roomID id.RoomID) ([]id.EventID, error) {
	return queryColumn[id.EventID](ctx, s.db.r, `SELECT event_id FROM forward_extremities WHERE room_id = $1`, roomID)
}

// GetEvents implements storage.RoomStore.
func (s *Store) GetEvents(ctx context.Context, ids []id.EventID) ([]*storage.Event, error) {
	var out []*storage.Event
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		args := make([]any, len(chunk))
		for i, e := range chunk {
			args[i] = e
		}
		evs, err := scanEvents(s.db.r.QueryContext(ctx, `SELECT `+eventCols+` FROM events WHERE event_id IN `+In(1, len(chunk)), args...))
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	return out, nil
}

// GetEvent implements storage.RoomStore.
func (s *Store) GetEvent(ctx context.Context, eventID id.EventID) (*storage.Event, error) {
	ev, err := scanEvent(s.db.r.QueryRowContext(ctx, `SELECT `+eventCols+` FROM events WHERE event_id = $1`, eventID))
	if err != nil {
		return nil, NotFound(err)
	}
	return ev, nil
}

// EventByTxnID implements storage.RoomStore.
func (s *Store) EventByTxnID(ctx context.Context, user id.UserID, device id.DeviceID, scope, txnID string) (id.EventID, error) {
	var e id.EventID
	err := s.db.r.QueryRowContext(ctx, `SELECT event_id FROM txn_ids WHERE user_id = $1 AND device_id = $2 AND scope = $3 AND txn_id = $4`, user, device, scope, txnID).Scan(&e)
	return e, NotFound(err)
}

// CurrentState implements storage.RoomStore.
func (s *Store) CurrentState(ctx context.Context, roomID id.RoomID) ([]*storage.Event, error) {
	return scanEvents(s.db.r.QueryContext(ctx, `SELECT `+eventColsE+` FROM current_state c JOIN events e ON e.event_id = c.event_id WHERE c.room_id = $1`, roomID))
}

// CurrentStateEvent implements storage.RoomStore.
func (s *Store) CurrentStateEvent(ctx context.Context, roomID id.RoomID, evType, stateKey string) (*storage.Event, error) {
	ev, err := scanEvent(s.db.r.QueryRowContext(ctx, `SELECT `+eventColsE+` FROM current_state c JOIN events e ON e.event_id = c.event_id
		WHERE c.room_id = $1 AND c.type = $2 AND c.state_key = $3`, roomID, evType, stateKey))
	if err != nil {
		return nil, NotFound(err)
	}
	return ev, nil
}

// RoomEvents implements storage.RoomStore.
func (s *Store) RoomEvents(ctx context.Context, roomID id.RoomID, from, to int64, limit int, backwards bool) ([]*storage.Event, error) {
	order := "ASC"
	if backwards {
		order = "DESC"
	}
	return scanEvents(s.db.r.QueryContext(ctx, `SELECT `+eventCols+` FROM events WHERE room_id = $1 AND stream_pos > $2 AND stream_pos <= $3
		AND NOT rejected AND NOT outlier AND NOT soft_failed ORDER BY stream_pos `+order+` LIMIT $4`, roomID, from, to, limit))
}

// LastEventAt implements storage.RoomStore.
func (s *Store) LastEventAt(ctx context.Context, roomID id.RoomID, pos int64) (*storage.Event, error) {
	ev, err := scanEvent(s.db.r.QueryRowContext(ctx, `SELECT `+eventCols+` FROM events WHERE room_id = $1 AND stream_pos <= $2
		AND NOT rejected AND NOT outlier AND NOT soft_failed ORDER BY stream_pos DESC LIMIT 1`, roomID, pos))
	if err != nil {
		return nil, NotFound(err)
	}
	return ev, nil
}

// MaxStreamPos implements storage.RoomStore.
func (s *Store) MaxStreamPos(ctx context.Context) (int64, error) {
	// A purged room may have taken the newest events with it: the position
	// never goes back below what it was then (streamEventsFloor).
	var pos, floor int64
	err := s.db.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(stream_pos), 0),
		COALESCE((SELECT pos FROM stream_positions WHERE name = $1), 0) FROM events`, streamEventsFloor).Scan(&pos, &floor)
	return max(pos, floor), err
}

// RoomsChangedBetween implements storage.RoomStore.
func (s *Store) RoomsChangedBetween(ctx context.Context, from, to int64) ([]id.RoomID, error) {
	return queryColumn[id.RoomID](ctx, s.db.r, `SELECT DISTINCT room_id FROM events WHERE stream_pos > $1 AND stream_pos <= $2`, from, to)
}

func scanMemberships(rows *sql.Rows, err error) ([]storage.Membership, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.Membership
	for rows.Next() {
		var m storage.Membership
		var ms sql.NullString
		if err := rows.Scan(&m.RoomID, &m.UserID, &ms, &m.EventID, &m.StreamPos); err != nil {
			return nil, err
		}
		m.Membership = ms.String
		out = append(out, m)
	}
	return out, rows.Err()
}

// UserMemberships implements storage.RoomStore.
func (s *Store) UserMemberships(ctx context.Context, user id.UserID) ([]storage.Membership, error) {
	return scanMemberships(s.db.r.QueryContext(ctx, `SELECT room_id, state_key, membership, event_id, stream_pos FROM current_state
		WHERE type = 'm.room.member' AND state_key = $1`, user))
}

// UserMembershipsChanged implements storage.RoomStore.
func (s *Store) UserMembershipsChanged(ctx context.Context, user id.UserID, from, to int64) ([]storage.Membership, error) {
	return scanMemberships(s.db.r.QueryContext(ctx, `SELECT room_id, state_key, membership, event_id, stream_pos FROM current_state
		WHERE type = 'm.room.member' AND state_key = $1
		AND room_id IN (SELECT DISTINCT room_id FROM events WHERE stream_pos > $2 AND stream_pos <= $3)`, user, from, to))
}

// RoomMemberships implements storage.RoomStore.
func (s *Store) RoomMemberships(ctx context.Context, roomID id.RoomID) ([]storage.Membership, error) {
	return scanMemberships(s.db.r.QueryContext(ctx, `SELECT room_id, state_key, membership, event_id, stream_pos FROM current_state
		WHERE room_id = $1 AND type = 'm.room.member'`, roomID))
}

// LocalMemberships implements storage.RoomStore.
func (s *Store) LocalMemberships(ctx context.Context, serverName string, memberships []string) ([]storage.Membership, error) {
	args := []any{"%:" + serverName}
	for _, m := range memberships {
		args = append(args, m)
	}
	return scanMemberships(s.db.r.QueryContext(ctx, `SELECT room_id, state_key, membership, event_id, stream_pos FROM current_state
		WHERE type = 'm.room.member' AND state_key LIKE $1 AND membership IN `+In(2, len(memberships)), args...))
}

// StateHistory implements storage.RoomStore.
func (s *Store) StateHistory(ctx context.Context, roomID id.RoomID, evType, stateKey string) ([]*storage.Event, error) {
	return scanEvents(s.db.r.QueryContext(ctx, `SELECT `+eventCols+` FROM events WHERE room_id = $1 AND type = $2 AND state_key = $3
		AND NOT rejected AND NOT outlier AND NOT soft_failed ORDER BY stream_pos`, roomID, evType, stateKey))
}

// SenderHasEvents implements storage.RoomStore.
func (s *Store) SenderHasEvents(ctx context.Context, roomID id.RoomID, sender id.UserID, after, upto int64) (bool, error) {
	var n int
	err := s.db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE room_id = $1 AND sender = $2 AND stream_pos > $3 AND stream_pos <= $4
		AND NOT rejected AND NOT outlier AND NOT soft_failed LIMIT 1) AS found`, roomID, sender, after, upto).Scan(&n)
	return n > 0, err
}

// CreateAlias implements storage.RoomStore.
func (s *Store) CreateAlias(ctx context.Context, alias id.RoomAlias, roomID id.RoomID, creator id.UserID) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO room_aliases (alias, room_id, creator) VALUES ($1, $2, $3)`, alias, roomID, creator)
		return Conflict(err)
	})
}

// ResolveAlias implements storage.RoomStore.
func (s *Store) ResolveAlias(ctx context.Context, alias id.RoomAlias) (id.RoomID, id.UserID, error) {
	var r id.RoomID
	var c id.UserID
	err := s.db.r.QueryRowContext(ctx, `SELECT room_id, creator FROM room_aliases WHERE alias = $1`, alias).Scan(&r, &c)
	return r, c, NotFound(err)
}

// DeleteAlias implements storage.RoomStore.
func (s *Store) DeleteAlias(ctx context.Context, alias id.RoomAlias) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM room_aliases WHERE alias = $1`, alias)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		return nil
	})
}

// RoomAliases implements storage.RoomStore.
func (s *Store) RoomAliases(ctx context.Context, roomID id.RoomID) ([]id.RoomAlias, error) {
	out, err := queryColumn[id.RoomAlias](ctx, s.db.r, `SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias`, roomID)
	if out == nil && err == nil {
		out = []id.RoomAlias{} // the endpoint answers {"aliases": []}
	}
	return out, err
}

// MoveRoomDirectory implements storage.RoomStore.
func (s *Store) MoveRoomDirectory(ctx context.Context, from, to id.RoomID) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		var public bool
		if err := tx.QueryRowContext(ctx, `SELECT is_public FROM rooms WHERE room_id = $1`, from).Scan(&public); err != nil {
			return NotFound(err)
		}
		res, err := tx.ExecContext(ctx, `UPDATE rooms SET is_public = $1 WHERE room_id = $2`, public, to)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rooms SET is_public = $1 WHERE room_id = $2`, false, from); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE room_aliases SET room_id = $1 WHERE room_id = $2`, to, from)
		return err
	})
}

// ForgetRoom implements storage.RoomStore.
func (s *Store) ForgetRoom(ctx context.Context, user id.UserID, roomID id.RoomID) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO forgotten_rooms (user_id, room_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, user, roomID)
		return err
	})
}

// UnforgetRoom implements storage.RoomStore.
func (s *Store) UnforgetRoom(ctx context.Context, user id.UserID, roomID id.RoomID) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM forgotten_rooms WHERE user_id = $1 AND room_id = $2`, user, roomID)
		return err
	})
}

// ForgottenRooms implements storage.RoomStore.
func (s *Store) ForgottenRooms(ctx context.Context, user id.UserID) (map[id.RoomID]bool, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT room_id FROM forgotten_rooms WHERE user_id = $1`, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[id.RoomID]bool{}
	for rows.Next() {
		var r id.RoomID
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		out[r] = true
	}
	return out, rows.Err()
}

// eventColsE is eventCols qualified with the alias "e.".
var eventColsE = prefixColumns(eventCols, "e.")

func prefixColumns(cols, p string) string {
	var b []byte
	start := true
	for i := 0; i < len(cols); i++ {
		c := cols[i]
		if start && c != ' ' && c != '\t' && c != '\n' {
			b = append(b, p...)
			start = false
		}
		b = append(b, c)
		if c == ',' {
			start = true
		}
	}
	return string(b)
}

// applyInitialState stores state as a full snapshot group and makes it the
// room's current state (see storage.StoreEventsRequest.InitialState).
func (s *Store) applyInitialState(ctx context.Context, tx *sql.Tx, roomID id.RoomID, state map[storage.StateKeyTuple]id.EventID) (int64, error) {
	var g int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO state_groups (room_id, prev_group, chain_len) VALUES ($1, NULL, 0) RETURNING group_id`,
		roomID).Scan(&g); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM current_state WHERE room_id = $1`, roomID); err != nil {
		return 0, err
	}
	for k, v := range state {
		if _, err := tx.ExecContext(ctx, `INSERT INTO state_group_entries (group_id, type, state_key, event_id) VALUES ($1, $2, $3, $4)`,
			g, k.Type, k.StateKey, v); err != nil {
			return 0, err
		}
		var pos int64
		var membership sql.NullString
		if err := tx.QueryRowContext(ctx, `SELECT stream_pos, membership FROM events WHERE event_id = $1`, v).Scan(&pos, &membership); err != nil {
			return 0, fmt.Errorf("state event %s: %w", v, NotFound(err))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO current_state (room_id, type, state_key, event_id, stream_pos, membership) VALUES ($1, $2, $3, $4, $5, $6)`,
			roomID, k.Type, k.StateKey, v, pos, membership); err != nil {
			return 0, err
		}
	}
	return g, nil
}

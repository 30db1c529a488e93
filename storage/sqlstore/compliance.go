package sqlstore

import (
	"context"
	"database/sql"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// PutHold implements storage.ComplianceStore.
func (s *Store) PutHold(ctx context.Context, h storage.Hold) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO compliance_holds (kind, target, created_ts, created_by) VALUES ($1, $2, $3, $4)
			ON CONFLICT (kind, target) DO NOTHING`, h.Kind, h.Target, h.CreatedTS, h.CreatedBy)
		return err
	})
}

// DeleteHold implements storage.ComplianceStore.
func (s *Store) DeleteHold(ctx context.Context, kind, target string) error {
	return s.execOne(ctx, `DELETE FROM compliance_holds WHERE kind = $1 AND target = $2`, kind, target)
}

// ListHolds implements storage.ComplianceStore.
func (s *Store) ListHolds(ctx context.Context) ([]storage.Hold, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT kind, target, created_ts, created_by FROM compliance_holds ORDER BY created_ts, kind, target`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []storage.Hold{}
	for rows.Next() {
		var h storage.Hold
		if err := rows.Scan(&h.Kind, &h.Target, &h.CreatedTS, &h.CreatedBy); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// HeldOriginals implements storage.ComplianceStore.
func (s *Store) HeldOriginals(ctx context.Context, ids []id.EventID) (map[id.EventID][]byte, error) {
	out := map[id.EventID][]byte{}
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		args := make([]any, len(chunk))
		for i, v := range chunk {
			args[i] = v
		}
		rows, err := s.db.r.QueryContext(ctx, `SELECT event_id, pdu FROM held_events WHERE event_id IN `+In(1, len(chunk)), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var evID id.EventID
			var pdu string
			if err := rows.Scan(&evID, &pdu); err != nil {
				rows.Close()
				return nil, err
			}
			out[evID] = []byte(pdu)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PurgedHeldEvents implements storage.ComplianceStore.
func (s *Store) PurgedHeldEvents(ctx context.Context, roomID id.RoomID) ([]storage.HeldEvent, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT h.event_id, h.room_id, h.sender, h.stream_pos, h.pdu FROM held_events h
		WHERE h.room_id = $1 AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = h.event_id) ORDER BY h.stream_pos`, roomID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.HeldEvent
	for rows.Next() {
		var h storage.HeldEvent
		var pdu string
		if err := rows.Scan(&h.EventID, &h.RoomID, &h.Sender, &h.StreamPos, &pdu); err != nil {
			return nil, err
		}
		h.PDU = []byte(pdu)
		out = append(out, h)
	}
	return out, rows.Err()
}

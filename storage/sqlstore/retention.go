package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"
)

// PurgeEvents implements storage.RetentionStore.
func (s *Store) PurgeEvents(ctx context.Context, roomID id.RoomID, before, selfDestructBefore int64) (int, error) {
	n := 0
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		// Candidates: non-state events that are not forward extremities. Events
		// carrying a self-destruct time are read too when one is asked for.
		q := `SELECT e.event_id, e.origin_ts, e.pdu FROM events e WHERE e.room_id = $1 AND e.state_key IS NULL
			AND NOT EXISTS (SELECT 1 FROM forward_extremities f WHERE f.room_id = e.room_id AND f.event_id = e.event_id)
			AND (e.origin_ts < $2`
		if selfDestructBefore > 0 {
			q += ` OR e.pdu LIKE '%self_destruct_after%'`
		}
		q += `)`
		args := []any{roomID, before}
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		var ids []any
		for rows.Next() {
			var evID string
			var ts int64
			var pdu string
			if err := rows.Scan(&evID, &ts, &pdu); err != nil {
				rows.Close()
				return err
			}
			expired := ts < before
			if !expired && selfDestructBefore > 0 {
				sd := gjson.Get(pdu, `content.m\.self_destruct_after`)
				if !sd.Exists() {
					sd = gjson.Get(pdu, `content.org\.matrix\.self_destruct_after`)
				}
				expired = sd.Type == gjson.Number && sd.Int() < selfDestructBefore
			}
			if expired {
				ids = append(ids, evID)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) > 0 {
			s.eventsMutated.Add(1)
		}
		now := time.Now().UnixMilli()
		for start := 0; start < len(ids); start += 500 {
			chunk := ids[start:min(start+500, len(ids))]
			in := In(2, len(chunk))
			withTS := append([]any{now}, chunk...)
			if _, err := tx.ExecContext(ctx, `INSERT INTO held_events (event_id, room_id, sender, stream_pos, pdu, held_ts)
				SELECT e.event_id, e.room_id, e.sender, e.stream_pos, e.pdu, $1 FROM events e
				WHERE e.event_id IN `+in+` AND EXISTS (SELECT 1 FROM compliance_holds h
					WHERE (h.kind = 'room' AND h.target = e.room_id) OR (h.kind = 'user' AND h.target = e.sender))
				ON CONFLICT (event_id) DO NOTHING`, withTS...); err != nil {
				return fmt.Errorf("keep held events: %w", err)
			}
			in1 := In(1, len(chunk))
			if s.fts5 {
				if _, err := tx.ExecContext(ctx, `DELETE FROM search_fts WHERE rowid IN (SELECT stream_pos FROM search_docs WHERE event_id IN `+in1+`)`, chunk...); err != nil {
					return err
				}
			}
			// push_notified is keyed by room and position: the events' rows go
			// before the events themselves.
			if _, err := tx.ExecContext(ctx, `DELETE FROM push_notified WHERE room_id = $1 AND event_pos IN
				(SELECT stream_pos FROM events WHERE event_id IN `+In(2, len(chunk))+`)`, append([]any{roomID}, chunk...)...); err != nil {
				return fmt.Errorf("purge push_notified: %w", err)
			}
			for _, table := range []string{"search_docs", "txn_ids", "event_edges", "events"} {
				if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE event_id IN `+in1, chunk...); err != nil {
					return fmt.Errorf("purge %s: %w", table, err)
				}
			}
		}
		n = len(ids)
		return nil
	})
	return n, err
}

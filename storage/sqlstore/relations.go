package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"strconv"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// indexRelation records content.m.relates_to of an accepted event, and drops
// the relation of an event being redacted (its content is gone).
func indexRelation(ctx context.Context, tx *sql.Tx, ev *storage.NewEvent, pos int64) error {
	if ev.Redacts != "" && ev.RedactedJSON != nil {
		if _, err := tx.ExecContext(ctx, `DELETE FROM relations WHERE event_id = $1`, ev.Redacts); err != nil {
			return err
		}
	}
	rel := gjson.GetBytes(ev.JSON, `content.m\.relates_to`)
	if !rel.IsObject() {
		return nil
	}
	relType, parent := rel.Get("rel_type"), rel.Get("event_id")
	if relType.Type != gjson.String || parent.Type != gjson.String || relType.Str == "" || parent.Str == "" {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO relations (event_id, relates_to, rel_type, room_id, sender, type, stream_pos)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
		ev.EventID, parent.Str, relType.Str, ev.RoomID, ev.Sender, ev.Type, pos)
	return err
}

// Relations implements storage.RelationStore.
func (s *Store) Relations(ctx context.Context, q storage.RelationsQuery) ([]*storage.Event, error) {
	args := []any{q.EventID, q.RoomID, max(q.Depth, 1), q.Lo, q.Hi}
	where := ""
	if q.RelType != "" {
		args = append(args, q.RelType)
		where += ` AND x.rel_type = $` + strconv.Itoa(len(args))
	}
	if q.EventType != "" {
		args = append(args, q.EventType)
		where += ` AND x.type = $` + strconv.Itoa(len(args))
	}
	order := "ASC"
	if q.Backwards {
		order = "DESC"
	}
	args = append(args, q.Limit)
	return scanEvents(s.db.r.QueryContext(ctx, `WITH RECURSIVE rel(event_id, depth) AS (
			SELECT event_id, 1 FROM relations WHERE relates_to = $1 AND room_id = $2
			UNION ALL
			SELECT r.event_id, rel.depth + 1 FROM relations r JOIN rel ON r.relates_to = rel.event_id WHERE rel.depth < $3
		)
		SELECT `+eventColsE+` FROM rel JOIN relations x ON x.event_id = rel.event_id JOIN events e ON e.event_id = rel.event_id
		WHERE e.stream_pos > $4 AND e.stream_pos <= $5`+where+` AND NOT e.rejected AND NOT e.outlier AND NOT e.soft_failed
		ORDER BY e.stream_pos `+order+` LIMIT $`+strconv.Itoa(len(args)), args...))
}

// Threads implements storage.RelationStore.
func (s *Store) Threads(ctx context.Context, roomID id.RoomID, participant id.UserID, before int64, limit int) ([]storage.ThreadRoot, error) {
	if before <= 0 {
		before = 1 << 62
	}
	// SQLite numbers $N placeholders in order of first appearance: keep them in order.
	args := []any{roomID}
	filter := ""
	if participant != "" {
		args = append(args, participant)
		filter = ` AND (relates_to IN (SELECT relates_to FROM relations WHERE room_id = $1 AND rel_type = 'm.thread' AND sender = $2)
			OR relates_to IN (SELECT event_id FROM events WHERE room_id = $1 AND sender = $2))`
	}
	n := len(args)
	args = append(args, before, limit)
	rows, err := s.db.r.QueryContext(ctx, `SELECT relates_to, MAX(stream_pos) AS latest FROM relations
		WHERE room_id = $1 AND rel_type = 'm.thread'`+filter+`
		GROUP BY relates_to HAVING MAX(stream_pos) < $`+strconv.Itoa(n+1)+` ORDER BY latest DESC LIMIT $`+strconv.Itoa(n+2), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.ThreadRoot
	for rows.Next() {
		var t storage.ThreadRoot
		if err := rows.Scan(&t.EventID, &t.LatestPos); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Aggregations implements storage.RelationStore.
func (s *Store) Aggregations(ctx context.Context, user id.UserID, evs []*storage.Event) (map[id.EventID]*storage.Aggregation, error) {
	out := map[id.EventID]*storage.Aggregation{}
	if len(evs) == 0 {
		return out, nil
	}
	byID := make(map[id.EventID]*storage.Event, len(evs))
	args := make([]any, 0, len(evs)+1)
	for _, ev := range evs {
		if _, dup := byID[ev.EventID]; !dup {
			byID[ev.EventID] = ev
			args = append(args, ev.EventID)
		}
	}
	in := In(1, len(args))
	agg := func(parent id.EventID) *storage.Aggregation {
		a := out[parent]
		if a == nil {
			a = &storage.Aggregation{}
			out[parent] = a
		}
		return a
	}
	// Threads, references, who replied and edit candidates, in one pass over
	// the rows (the common case, no relations, costs one indexed query).
	rows, err := s.db.r.QueryContext(ctx, `SELECT relates_to, rel_type, event_id, sender FROM relations
		WHERE relates_to IN `+in+` AND rel_type IN ('m.thread', 'm.reference', 'm.replace') ORDER BY stream_pos`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var editIDs []id.EventID
	for rows.Next() {
		var parent, relType, eventID, sender string
		if err := rows.Scan(&parent, &relType, &eventID, &sender); err != nil {
			return nil, err
		}
		if relType == "m.replace" {
			// A replacement only counts from the original's sender.
			if id.UserID(sender) == byID[id.EventID(parent)].Sender {
				editIDs = append(editIDs, id.EventID(eventID))
			}
			continue
		}
		a := agg(id.EventID(parent))
		if relType == "m.reference" {
			a.References = append(a.References, id.EventID(eventID))
			continue
		}
		a.ThreadCount++
		a.ThreadLatest = id.EventID(eventID)
		if id.UserID(sender) == user || byID[id.EventID(parent)].Sender == user {
			a.ThreadParticipated = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(editIDs) == 0 {
		return out, nil
	}
	edits, err := s.GetEvents(ctx, editIDs)
	if err != nil {
		return nil, err
	}
	for _, e := range edits {
		parent := id.EventID(gjson.GetBytes(e.JSON, `content.m\.relates_to.event_id`).Str)
		orig := byID[parent]
		// A replacement only counts from the original's sender, with its type.
		if orig == nil || e.Sender != orig.Sender || e.Type != orig.Type || e.Rejected || e.SoftFailed || e.Redacted {
			continue
		}
		if a := agg(parent); a.Replace == nil || newerEdit(e, a.Replace) {
			a.Replace = e
		}
	}
	return out, nil
}

// newerEdit orders replacements by origin_server_ts, then event ID (spec: m.replace bundling).
func newerEdit(a, b *storage.Event) bool {
	return cmp.Or(cmp.Compare(a.OriginTS, b.OriginTS), cmp.Compare(a.EventID, b.EventID)) > 0
}

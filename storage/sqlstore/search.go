package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/tidwall/gjson"

	"parley/storage"
)

// searchKeys maps the event types that are indexed to the content key indexed.
var searchKeys = map[string]string{
	"m.room.message": "content.body",
	"m.room.name":    "content.name",
	"m.room.topic":   "content.topic",
}

// setupFTS creates the SQLite FTS5 index over search_docs when the SQLite
// library was built with FTS5 (Go build tag sqlite_fts5), rebuilding it when
// it lags search_docs (documents written by a build without FTS5). It reports
// whether FTS5 is in use; without it, search falls back to LIKE matching.
func (s *Store) setupFTS(ctx context.Context) (bool, error) {
	if s.db.Dialect != SQLite {
		return false, nil
	}
	_, err := s.db.w.ExecContext(ctx, `CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(value, tokenize = 'porter unicode61')`)
	if err != nil {
		if strings.Contains(err.Error(), "no such module") {
			return false, nil
		}
		return false, fmt.Errorf("create search_fts: %w", err)
	}
	var ftsMax, docsMax int64
	if err := s.db.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(rowid), 0) FROM search_fts`).Scan(&ftsMax); err != nil {
		return false, err
	}
	if err := s.db.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(stream_pos), 0) FROM search_docs`).Scan(&docsMax); err != nil {
		return false, err
	}
	if ftsMax != docsMax {
		err := s.db.Write(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `DELETE FROM search_fts`); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO search_fts (rowid, value) SELECT stream_pos, value FROM search_docs`)
			return err
		})
		if err != nil {
			return false, fmt.Errorf("rebuild search_fts: %w", err)
		}
	}
	return true, nil
}

// indexSearch drops the target of a redaction from the search index (keeping
// its original first when it is under a compliance hold) and, on PostgreSQL,
// adds an accepted event's searchable text to the index. It runs in the
// transaction that stores the event; SQLite indexes new events later
// (CatchUpSearch), keeping the send path short. It runs in the transaction that
// stores the event.
func (s *Store) indexSearch(ctx context.Context, tx *sql.Tx, ev *storage.NewEvent, pos int64) error {
	if ev.Redacts != "" && ev.RedactedJSON != nil {
		// A compliance hold keeps the original for export before the redaction replaces it.
		if _, err := tx.ExecContext(ctx, `INSERT INTO held_events (event_id, room_id, sender, stream_pos, pdu, held_ts)
			SELECT e.event_id, e.room_id, e.sender, e.stream_pos, e.pdu, $1 FROM events e
			WHERE e.event_id = $2 AND NOT e.redacted AND EXISTS (SELECT 1 FROM compliance_holds h
				WHERE (h.kind = 'room' AND h.target = e.room_id) OR (h.kind = 'user' AND h.target = e.sender))
			ON CONFLICT (event_id) DO NOTHING`, time.Now().UnixMilli(), ev.Redacts); err != nil {
			return fmt.Errorf("keep held original: %w", err)
		}
		if s.fts5 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM search_fts WHERE rowid IN (SELECT stream_pos FROM search_docs WHERE event_id = $1)`, ev.Redacts); err != nil {
				return fmt.Errorf("unindex redacted event: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM search_docs WHERE event_id = $1`, ev.Redacts); err != nil {
			return fmt.Errorf("unindex redacted event: %w", err)
		}
	}
	if s.db.Dialect == SQLite {
		return nil // indexed later by CatchUpSearch, off the send path
	}
	return s.insertSearchDoc(ctx, tx, &ev.Event, pos)
}

// insertSearchDoc indexes one accepted event if it has searchable text.
func (s *Store) insertSearchDoc(ctx context.Context, tx *sql.Tx, ev *storage.Event, pos int64) error {
	key, ok := searchKeys[ev.Type]
	if !ok || ev.Redacted || (ev.StateKey != nil) != (ev.Type != "m.room.message") || ev.StateKey != nil && *ev.StateKey != "" {
		return nil
	}
	v := gjson.GetBytes(ev.JSON, key)
	if v.Type != gjson.String || strings.TrimSpace(v.Str) == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO search_docs (stream_pos, event_id, room_id, sender, key, value, origin_ts)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (stream_pos) DO NOTHING`, pos, ev.EventID, ev.RoomID, ev.Sender, key, v.Str, ev.OriginTS); err != nil {
		return fmt.Errorf("index event: %w", err)
	}
	if s.fts5 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO search_fts (rowid, value) VALUES ($1, $2)`, pos, v.Str); err != nil {
			return fmt.Errorf("index event: %w", err)
		}
	}
	return nil
}

// catchUpBatch is how many events one CatchUpSearch transaction reads.
const catchUpBatch = 1000

// CatchUpSearch implements storage.SearchStore: on SQLite it indexes the
// events stored since the last run, in batches; on PostgreSQL events are
// indexed as they are stored and it does nothing.
func (s *Store) CatchUpSearch(ctx context.Context) error {
	if s.db.Dialect != SQLite {
		return nil
	}
	s.searchMu.Lock()
	defer s.searchMu.Unlock()
	for {
		n := 0
		err := s.db.Write(ctx, func(tx *sql.Tx) error {
			var from int64
			if err := tx.QueryRowContext(ctx, `SELECT stream_pos FROM search_position WHERE id = 1`).Scan(&from); err != nil {
				return err
			}
			evs, err := scanEvents(tx.QueryContext(ctx, `SELECT `+eventCols+` FROM events WHERE stream_pos > $1 ORDER BY stream_pos LIMIT $2`, from, catchUpBatch))
			if err != nil {
				return err
			}
			n = len(evs)
			if n == 0 {
				return nil
			}
			for _, ev := range evs {
				if ev.Rejected || ev.Outlier || ev.SoftFailed {
					continue
				}
				if err := s.insertSearchDoc(ctx, tx, ev, ev.StreamPos); err != nil {
					return err
				}
			}
			_, err = tx.ExecContext(ctx, `UPDATE search_position SET stream_pos = $1 WHERE id = 1`, evs[n-1].StreamPos)
			return err
		})
		if err != nil {
			return fmt.Errorf("index events for search: %w", err)
		}
		if n < catchUpBatch {
			return nil
		}
	}
}

// searchTokens splits a search term into lower-case words.
func searchTokens(term string) []string {
	return strings.FieldsFunc(strings.ToLower(term), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// SearchEvents implements storage.SearchStore. On PostgreSQL the term is
// parsed by websearch_to_tsquery (english configuration); on SQLite every
// word of the term must match (FTS5 with the porter stemmer, or substring
// matching without FTS5).
func (s *Store) SearchEvents(ctx context.Context, q storage.SearchQuery) ([]storage.SearchHit, int, error) {
	if len(q.Rooms) == 0 {
		return nil, 0, nil
	}
	if err := s.CatchUpSearch(ctx); err != nil {
		return nil, 0, err
	}
	var (
		args  []any
		where []string
		from  = "search_docs d"
		rank  string
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	toks := searchTokens(q.Term)
	switch {
	case s.db.Dialect == Postgres:
		p := arg(q.Term)
		where = append(where, "d.vec @@ websearch_to_tsquery('english', "+p+")")
		rank = "ts_rank(d.vec, websearch_to_tsquery('english', " + p + "))"
	case len(toks) == 0:
		return nil, 0, nil
	case s.fts5:
		quoted := make([]string, len(toks))
		for i, t := range toks {
			quoted[i] = `"` + t + `"`
		}
		from = "search_fts JOIN search_docs d ON d.stream_pos = search_fts.rowid"
		where = append(where, "search_fts MATCH "+arg(strings.Join(quoted, " ")))
		rank = "-bm25(search_fts)"
	default:
		var terms []string
		for _, t := range toks {
			p := arg(t)
			where = append(where, "instr(lower(d.value), "+p+") > 0")
			terms = append(terms, "(length(d.value) - length(replace(lower(d.value), "+p+", ''))) * 1.0 / length("+p+")")
		}
		rank = strings.Join(terms, " + ")
	}
	in := func(col string, vals []string, not bool) {
		ph := make([]string, len(vals))
		for i, v := range vals {
			ph[i] = arg(v)
		}
		op := " IN ("
		if not {
			op = " NOT IN ("
		}
		where = append(where, col+op+strings.Join(ph, ",")+")")
	}
	in("d.room_id", idStrings(q.Rooms), false)
	if len(q.Keys) > 0 {
		in("d.key", q.Keys, false)
	}
	if q.Senders != nil {
		if len(q.Senders) == 0 {
			return nil, 0, nil
		}
		in("d.sender", idStrings(q.Senders), false)
	}
	if len(q.NotSenders) > 0 {
		in("d.sender", idStrings(q.NotSenders), true)
	}
	cond := strings.Join(where, " AND ")
	var total int
	if err := s.db.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+from+" WHERE "+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count search hits: %w", err)
	}
	order := "d.stream_pos DESC"
	if q.ByRank {
		order = "rank DESC, d.stream_pos DESC"
	}
	limit := arg(q.Limit)
	offset := arg(q.Offset)
	rows, err := s.db.r.QueryContext(ctx, "SELECT d.event_id, d.room_id, d.stream_pos, "+rank+" AS rank FROM "+from+
		" WHERE "+cond+" ORDER BY "+order+" LIMIT "+limit+" OFFSET "+offset, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("search: %w", err)
	}
	defer rows.Close()
	var hits []storage.SearchHit
	for rows.Next() {
		var h storage.SearchHit
		if err := rows.Scan(&h.EventID, &h.RoomID, &h.StreamPos, &h.Rank); err != nil {
			return nil, 0, err
		}
		hits = append(hits, h)
	}
	return hits, total, rows.Err()
}

func idStrings[T ~string](ids []T) []string {
	out := make([]string, len(ids))
	for i, v := range ids {
		out[i] = string(v)
	}
	return out
}

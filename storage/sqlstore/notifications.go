package sqlstore

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

var _ storage.NotificationStore = (*Store)(nil)

// AddNotifications implements storage.NotificationStore.
func (s *Store) AddNotifications(ctx context.Context, ns []storage.Notification, jobs []storage.PushJob) error {
	if len(ns) == 0 && len(jobs) == 0 {
		return nil
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		// A receipt may already have read past the event (push rules run
		// after the event is persisted), in which case it is born read.
		readUpto, err := readPositions(ctx, tx, ns)
		if err != nil {
			return err
		}
		if err := insertNotifications(ctx, tx, ns, readUpto); err != nil {
			return err
		}
		for _, j := range jobs {
			_, err := tx.ExecContext(ctx, `INSERT INTO push_queue (user_id, app_id, pushkey, url, payload, attempts, next_attempt_ts)
				VALUES ($1, $2, $3, $4, $5, 0, $6)`, string(j.UserID), j.AppID, j.PushKey, j.URL, string(j.Payload), j.NextAttemptTS)
			if err != nil {
				return fmt.Errorf("queue push: %w", err)
			}
		}
		return nil
	})
}

// notifiedGroup is one element of push_notified.notified: the users an event
// notified with the same actions.
type notifiedGroup struct {
	Users     []id.UserID     `json:"u"`
	Highlight bool            `json:"h"`
	Actions   json.RawMessage `json:"a"`
}

// find returns the group holding user, or nil.
func findGroup(groups []notifiedGroup, user id.UserID) *notifiedGroup {
	for i := range groups {
		for _, u := range groups[i].Users {
			if u == user {
				return &groups[i]
			}
		}
	}
	return nil
}

// insertNotifications stores ns (grouped per event) and adds them to the
// users' unread counts; a notification is born read, and not counted, when
// readUpto (see readPositions; nil: nothing read yet) has a receipt at or
// past its event. An event already stored is skipped.
func insertNotifications(ctx context.Context, tx *sql.Tx, ns []storage.Notification, readUpto map[readKey]int64) error {
	for start := 0; start < len(ns); {
		end := start + 1
		for end < len(ns) && ns[end].EventID == ns[start].EventID && ns[end].RoomID == ns[start].RoomID {
			end++
		}
		if err := insertEventNotifications(ctx, tx, ns[start:end], readUpto); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// insertEventNotifications stores the notifications of one event.
func insertEventNotifications(ctx context.Context, tx *sql.Tx, ns []storage.Notification, readUpto map[readKey]int64) error {
	first := ns[0]
	var groups []notifiedGroup
	for _, n := range ns {
		g := -1
		for i := range groups {
			if groups[i].Highlight == n.Highlight && bytes.Equal(groups[i].Actions, n.Actions) {
				g = i
				break
			}
		}
		if g < 0 {
			groups = append(groups, notifiedGroup{Highlight: n.Highlight, Actions: n.Actions})
			g = len(groups) - 1
		}
		groups[g].Users = append(groups[g].Users, n.UserID)
	}
	notified, err := json.Marshal(groups)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO push_notified (room_id, event_pos, event_id, thread_id, ts, notified)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
		string(first.RoomID), first.EventPos, string(first.EventID), first.ThreadID, first.TS, string(notified))
	if err != nil {
		return fmt.Errorf("store notifications: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err // already stored: counted before
	}
	const cols = 5
	for start := 0; start < len(ns); start += notifInsertChunk {
		chunk := ns[start:min(start+notifInsertChunk, len(ns))]
		args := make([]any, 0, len(chunk)*cols)
		for _, n := range chunk {
			unread, highlight := 1, 0
			if max(readUpto[readKey{n.UserID, n.RoomID, ""}], readUpto[readKey{n.UserID, n.RoomID, n.ThreadID}]) >= n.EventPos {
				unread = 0 // born read: the row still lists the room for /notifications
			}
			if n.Highlight {
				highlight = unread
			}
			args = append(args, string(n.RoomID), string(n.UserID), n.ThreadID, unread, highlight)
		}
		if _, err := tx.ExecContext(ctx, countUpsertQueries[len(chunk)], args...); err != nil {
			return fmt.Errorf("count notifications: %w", err)
		}
	}
	return nil
}

// notifInsertChunk bounds the rows of one multi-row count upsert.
const notifInsertChunk = 100

// countUpsertQueries[n] adds n users' notifications to their counts.
var countUpsertQueries = func() (qs [notifInsertChunk + 1]string) {
	const cols = 5
	for n := 1; n <= notifInsertChunk; n++ {
		var q strings.Builder
		q.WriteString(`INSERT INTO push_counts (room_id, user_id, thread_id, notif_count, highlight_count) VALUES `)
		for i := 0; i < n; i++ {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(In(i*cols+1, cols))
		}
		q.WriteString(` ON CONFLICT (room_id, user_id, thread_id) DO UPDATE
			SET notif_count = push_counts.notif_count + excluded.notif_count,
			highlight_count = push_counts.highlight_count + excluded.highlight_count`)
		qs[n] = q.String()
	}
	return qs
}()

type readKey struct {
	user   id.UserID
	room   id.RoomID
	thread string
}

// readPositions loads how far the receipts of the rooms in ns have read, one
// query per room, keyed by user, room and thread (empty for unthreaded receipts).
func readPositions(ctx context.Context, tx *sql.Tx, ns []storage.Notification) (map[readKey]int64, error) {
	out := map[readKey]int64{}
	seen := map[id.RoomID]bool{}
	for _, n := range ns {
		if seen[n.RoomID] {
			continue
		}
		seen[n.RoomID] = true
		rows, err := tx.QueryContext(ctx, `SELECT user_id, thread_id, event_pos FROM push_read_upto WHERE room_id = $1`, string(n.RoomID))
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var user, thread string
			var pos int64
			if err := rows.Scan(&user, &thread, &pos); err != nil {
				rows.Close()
				return nil, err
			}
			out[readKey{id.UserID(user), n.RoomID, thread}] = pos
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// recountUnread recomputes user's unread counts in room after a receipt moved
// their read position (push_read_upto already updated): for thread, or for
// every thread when thread is empty; upTo math.MaxInt64 reads everything. It
// records the change in the notif stream.
func (s *Store) recountUnread(ctx context.Context, tx *sql.Tx, user id.UserID, room id.RoomID, thread string, upTo int64) error {
	q := `SELECT thread_id FROM push_counts WHERE room_id = $1 AND user_id = $2 AND notif_count > 0`
	args := []any{string(room), string(user)}
	if thread != "" {
		q += ` AND thread_id = $3`
		args = append(args, thread)
	}
	threads, err := queryColumn[string](ctx, tx, q+s.forUpdate(), args...)
	if err != nil {
		return fmt.Errorf("unread threads: %w", err)
	}
	if len(threads) > 0 {
		counts := make(map[string]*[2]int64, len(threads))
		for _, t := range threads {
			counts[t] = &[2]int64{}
		}
		if upTo != math.MaxInt64 {
			if err := s.countUnread(ctx, tx, user, room, counts); err != nil {
				return err
			}
		}
		for t, c := range counts {
			if _, err := tx.ExecContext(ctx, `UPDATE push_counts SET notif_count = $1, highlight_count = $2
				WHERE room_id = $3 AND user_id = $4 AND thread_id = $5`, c[0], c[1], string(room), string(user), t); err != nil {
				return fmt.Errorf("reset counts: %w", err)
			}
		}
	}
	return notifChanged(ctx, tx, user, room)
}

// countUnread fills counts (keyed by thread) with user's notifications in
// room that their receipts have not read.
func (s *Store) countUnread(ctx context.Context, tx *sql.Tx, user id.UserID, room id.RoomID, counts map[string]*[2]int64) error {
	read := map[string]int64{}
	rows, err := tx.QueryContext(ctx, `SELECT thread_id, event_pos FROM push_read_upto WHERE user_id = $1 AND room_id = $2`, string(user), string(room))
	if err != nil {
		return err
	}
	for rows.Next() {
		var t string
		var pos int64
		if err := rows.Scan(&t, &pos); err != nil {
			rows.Close()
			return err
		}
		read[t] = pos
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	readUpTo := func(t string) int64 { return max(read[""], read[t]) }
	from := int64(math.MaxInt64)
	for t := range counts {
		from = min(from, readUpTo(t))
	}
	rows, err = tx.QueryContext(ctx, `SELECT event_pos, thread_id, notified FROM push_notified WHERE room_id = $1 AND event_pos > $2`,
		string(room), from)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var pos int64
		var t string
		var notified []byte
		if err := rows.Scan(&pos, &t, &notified); err != nil {
			return err
		}
		c := counts[t]
		if c == nil || pos <= readUpTo(t) || !bytes.Contains(notified, []byte(user)) {
			continue
		}
		var groups []notifiedGroup
		if err := json.Unmarshal(notified, &groups); err != nil {
			return fmt.Errorf("notification of %s: %w", room, err)
		}
		if g := findGroup(groups, user); g != nil {
			c[0]++
			if g.Highlight {
				c[1]++
			}
		}
	}
	return rows.Err()
}

// UnreadCounts implements storage.NotificationStore.
func (s *Store) UnreadCounts(ctx context.Context, user id.UserID, rooms []id.RoomID) ([]storage.UnreadCount, error) {
	var out []storage.UnreadCount
	for start := 0; start < len(rooms); start += 500 {
		chunk := rooms[start:min(start+500, len(rooms))]
		args := []any{string(user)}
		for _, r := range chunk {
			args = append(args, string(r))
		}
		rows, err := s.db.r.QueryContext(ctx, `SELECT room_id, thread_id, notif_count, highlight_count
			FROM push_counts WHERE user_id = $1 AND room_id IN `+In(2, len(chunk))+` AND notif_count > 0`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var c storage.UnreadCount
			var room string
			if err := rows.Scan(&room, &c.ThreadID, &c.Notifications, &c.Highlights); err != nil {
				rows.Close()
				return nil, err
			}
			c.RoomID = id.RoomID(room)
			out = append(out, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// NotifChangedRooms implements storage.NotificationStore.
func (s *Store) NotifChangedRooms(ctx context.Context, user id.UserID, from, to int64) ([]id.RoomID, error) {
	return queryColumn[id.RoomID](ctx, s.db.r, `SELECT room_id FROM push_changes WHERE user_id = $1 AND stream_pos > $2 AND stream_pos <= $3`,
		string(user), from, to)
}

// NotifPosition implements storage.NotificationStore.
func (s *Store) NotifPosition(ctx context.Context) (int64, error) {
	return s.streamPos(ctx, streamNotif)
}

// Notifications implements storage.NotificationStore. It walks the rooms the
// user has counts in (every room that ever notified them) newest first,
// keeping only rows newer than the limit-th best found so far.
func (s *Store) Notifications(ctx context.Context, user id.UserID, before int64, limit int, onlyHighlight bool) ([]storage.Notification, error) {
	if limit <= 0 {
		return nil, nil
	}
	if before <= 0 {
		before = math.MaxInt64
	}
	rooms, err := queryColumn[id.RoomID](ctx, s.db.r, `SELECT DISTINCT room_id FROM push_counts WHERE user_id = $1`, string(user))
	if err != nil {
		return nil, err
	}
	read := map[readKey]int64{}
	rows, err := s.db.r.QueryContext(ctx, `SELECT room_id, thread_id, event_pos FROM push_read_upto WHERE user_id = $1`, string(user))
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var room, t string
		var pos int64
		if err := rows.Scan(&room, &t, &pos); err != nil {
			rows.Close()
			return nil, err
		}
		read[readKey{user, id.RoomID(room), t}] = pos
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []storage.Notification // newest first, at most limit
	page := max(limit, 20)
	for _, room := range rooms {
		upper := before
		for {
			lower := int64(math.MinInt64)
			if len(out) == limit {
				lower = out[len(out)-1].EventPos
			}
			found, next, err := s.roomNotifications(ctx, user, room, lower, upper, page, onlyHighlight)
			if err != nil {
				return nil, err
			}
			for _, n := range found {
				n.Read = max(read[readKey{user, room, ""}], read[readKey{user, room, n.ThreadID}]) >= n.EventPos
				i, _ := slices.BinarySearchFunc(out, n.EventPos, func(a storage.Notification, pos int64) int { return cmp.Compare(pos, a.EventPos) })
				out = slices.Insert(out, i, n)
				if len(out) > limit {
					out = out[:limit]
				}
			}
			if next == 0 {
				break
			}
			upper = next
		}
	}
	return out, nil
}

// roomNotifications reads up to page push_notified rows of room with
// lower < event_pos < upper, newest first, and returns user's notifications
// among them and, when the page was full, the position to continue below (else 0).
func (s *Store) roomNotifications(ctx context.Context, user id.UserID, room id.RoomID, lower, upper int64, page int, onlyHighlight bool) ([]storage.Notification, int64, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT event_pos, event_id, thread_id, ts, notified FROM push_notified
		WHERE room_id = $1 AND event_pos > $2 AND event_pos < $3 ORDER BY event_pos DESC LIMIT $4`, string(room), lower, upper, page)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []storage.Notification
	n, last := 0, int64(0)
	for rows.Next() {
		var ev string
		var notified []byte
		nt := storage.Notification{UserID: user, RoomID: room}
		if err := rows.Scan(&nt.EventPos, &ev, &nt.ThreadID, &nt.TS, &notified); err != nil {
			return nil, 0, err
		}
		n, last = n+1, nt.EventPos
		if !bytes.Contains(notified, []byte(user)) {
			continue
		}
		var groups []notifiedGroup
		if err := json.Unmarshal(notified, &groups); err != nil {
			return nil, 0, fmt.Errorf("notification of %s: %w", room, err)
		}
		g := findGroup(groups, user)
		if g == nil || (onlyHighlight && !g.Highlight) {
			continue
		}
		nt.ID, nt.EventID, nt.Highlight, nt.Actions = nt.EventPos, id.EventID(ev), g.Highlight, g.Actions
		out = append(out, nt)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	if n < page {
		last = 0
	}
	return out, last, nil
}

const pusherCols = `user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data, device_id, created_ts`

func scanPushers(rows *sql.Rows) ([]storage.Pusher, error) {
	defer rows.Close()
	var out []storage.Pusher
	for rows.Next() {
		var p storage.Pusher
		var user, data, dev string
		if err := rows.Scan(&user, &p.AppID, &p.PushKey, &p.Kind, &p.AppDisplayName, &p.DeviceDisplayName,
			&p.ProfileTag, &p.Lang, &data, &dev, &p.CreatedTS); err != nil {
			return nil, err
		}
		p.UserID, p.Data, p.DeviceID = id.UserID(user), json.RawMessage(data), id.DeviceID(dev)
		out = append(out, p)
	}
	return out, rows.Err()
}

// Pushers implements storage.NotificationStore.
func (s *Store) Pushers(ctx context.Context, user id.UserID) ([]storage.Pusher, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT `+pusherCols+` FROM pushers WHERE user_id = $1 ORDER BY created_ts, app_id, pushkey`, string(user))
	if err != nil {
		return nil, err
	}
	return scanPushers(rows)
}

// PushersOf implements storage.NotificationStore.
func (s *Store) PushersOf(ctx context.Context, users []id.UserID) ([]storage.Pusher, error) {
	var out []storage.Pusher
	for start := 0; start < len(users); start += 500 {
		chunk := users[start:min(start+500, len(users))]
		args := make([]any, len(chunk))
		for i, u := range chunk {
			args[i] = string(u)
		}
		rows, err := s.db.r.QueryContext(ctx, `SELECT `+pusherCols+` FROM pushers WHERE user_id IN `+In(1, len(chunk)), args...)
		if err != nil {
			return nil, err
		}
		ps, err := scanPushers(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}

// SetPusher implements storage.NotificationStore.
func (s *Store) SetPusher(ctx context.Context, p storage.Pusher, appendOthers bool) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if !appendOthers {
			if _, err := tx.ExecContext(ctx, `DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3`,
				p.AppID, p.PushKey, string(p.UserID)); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO pushers (`+pusherCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET kind = excluded.kind, app_display_name = excluded.app_display_name,
			device_display_name = excluded.device_display_name, profile_tag = excluded.profile_tag, lang = excluded.lang,
			data = excluded.data, device_id = excluded.device_id`,
			string(p.UserID), p.AppID, p.PushKey, p.Kind, p.AppDisplayName, p.DeviceDisplayName, p.ProfileTag, p.Lang,
			string(p.Data), string(p.DeviceID), p.CreatedTS)
		return err
	})
}

// DeletePusher implements storage.NotificationStore.
func (s *Store) DeletePusher(ctx context.Context, user id.UserID, appID, pushKey string) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3`, string(user), appID, pushKey); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM push_queue WHERE user_id = $1 AND app_id = $2 AND pushkey = $3`, string(user), appID, pushKey)
		return err
	})
}

// DuePushJobs implements storage.NotificationStore.
func (s *Store) DuePushJobs(ctx context.Context, now int64, limit int) ([]storage.PushJob, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT id, user_id, app_id, pushkey, url, payload, attempts, next_attempt_ts
		FROM push_queue WHERE next_attempt_ts <= $1 ORDER BY id LIMIT $2`, now, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.PushJob
	for rows.Next() {
		var j storage.PushJob
		var user, payload string
		if err := rows.Scan(&j.ID, &user, &j.AppID, &j.PushKey, &j.URL, &payload, &j.Attempts, &j.NextAttemptTS); err != nil {
			return nil, err
		}
		j.UserID, j.Payload = id.UserID(user), json.RawMessage(payload)
		out = append(out, j)
	}
	return out, rows.Err()
}

// NextPushJobTS implements storage.NotificationStore.
func (s *Store) NextPushJobTS(ctx context.Context) (int64, error) {
	var ts sql.NullInt64
	if err := s.db.r.QueryRowContext(ctx, `SELECT MIN(next_attempt_ts) FROM push_queue`).Scan(&ts); err != nil {
		return 0, err
	}
	if !ts.Valid {
		return 0, storage.ErrNotFound
	}
	return ts.Int64, nil
}

// RetryPushJob implements storage.NotificationStore.
func (s *Store) RetryPushJob(ctx context.Context, jobID int64, attempts int, next int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE push_queue SET attempts = $1, next_attempt_ts = $2 WHERE id = $3`, attempts, next, jobID)
		return err
	})
}

// DeletePushJob implements storage.NotificationStore.
func (s *Store) DeletePushJob(ctx context.Context, jobID int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM push_queue WHERE id = $1`, jobID)
		return err
	})
}

// UnreadTotal implements storage.NotificationStore.
func (s *Store) UnreadTotal(ctx context.Context, user id.UserID) (int, error) {
	var n int
	err := s.db.r.QueryRowContext(ctx, `SELECT COALESCE(SUM(notif_count), 0) FROM push_counts WHERE user_id = $1`, string(user)).Scan(&n)
	return n, err
}

package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
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

// insertNotifications inserts ns; a notification is born read when readUpto
// (see readPositions; nil: nothing read yet) has a receipt at or past its event.
func insertNotifications(ctx context.Context, tx *sql.Tx, ns []storage.Notification, readUpto map[readKey]int64) error {
	const cols = 11
	for start := 0; start < len(ns); start += notifInsertChunk {
		chunk := ns[start:min(start+notifInsertChunk, len(ns))]
		args := make([]any, 0, len(chunk)*cols)
		for _, n := range chunk {
			read := max(readUpto[readKey{n.UserID, n.RoomID, ""}], readUpto[readKey{n.UserID, n.RoomID, n.ThreadID}]) >= n.EventPos
			args = append(args, string(n.UserID), string(n.RoomID), string(n.EventID), n.ThreadID, n.EventPos, n.TS, n.Highlight,
				string(n.Actions), string(n.Event), n.ProfileTag, read)
		}
		if _, err := tx.ExecContext(ctx, notifInsertQueries[len(chunk)], args...); err != nil {
			return fmt.Errorf("store notifications: %w", err)
		}
	}
	return nil
}

// notifInsertChunk bounds the rows of one multi-row INSERT (11 parameters each).
const notifInsertChunk = 50

// notifInsertQueries[n] inserts n notifications.
var notifInsertQueries = func() (qs [notifInsertChunk + 1]string) {
	const cols = 11
	for n := 1; n <= notifInsertChunk; n++ {
		var q strings.Builder
		q.WriteString(`INSERT INTO push_actions (user_id, room_id, event_id, thread_id, event_pos, ts, highlight, actions, event, profile_tag, is_read) VALUES `)
		for i := 0; i < n; i++ {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(In(i*cols+1, cols))
		}
		q.WriteString(` ON CONFLICT (user_id, event_id) DO NOTHING`)
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
// query per room, keyed by user, room and thread (” for unthreaded receipts).
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

// UnreadCounts implements storage.NotificationStore.
func (s *Store) UnreadCounts(ctx context.Context, user id.UserID, rooms []id.RoomID) ([]storage.UnreadCount, error) {
	var out []storage.UnreadCount
	for start := 0; start < len(rooms); start += 500 {
		chunk := rooms[start:min(start+500, len(rooms))]
		args := []any{string(user)}
		for _, r := range chunk {
			args = append(args, string(r))
		}
		rows, err := s.db.r.QueryContext(ctx, `SELECT room_id, thread_id, COUNT(*), SUM(CASE WHEN highlight THEN 1 ELSE 0 END)
			FROM push_actions WHERE user_id = $1 AND is_read = FALSE AND room_id IN `+In(2, len(chunk))+`
			GROUP BY room_id, thread_id`, args...)
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

// Notifications implements storage.NotificationStore.
func (s *Store) Notifications(ctx context.Context, user id.UserID, before int64, limit int, onlyHighlight bool) ([]storage.Notification, error) {
	q := `SELECT id, room_id, event_id, thread_id, event_pos, ts, highlight, actions, event, profile_tag, is_read
		FROM push_actions WHERE user_id = $1`
	args := []any{string(user)}
	if before > 0 {
		args = append(args, before)
		q += fmt.Sprintf(` AND id < $%d`, len(args))
	}
	if onlyHighlight {
		q += ` AND highlight = TRUE`
	}
	args = append(args, limit)
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args))
	rows, err := s.db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.Notification
	for rows.Next() {
		n := storage.Notification{UserID: user}
		var room, ev, actions, event string
		if err := rows.Scan(&n.ID, &room, &ev, &n.ThreadID, &n.EventPos, &n.TS, &n.Highlight, &actions, &event, &n.ProfileTag, &n.Read); err != nil {
			return nil, err
		}
		n.RoomID, n.EventID, n.Actions, n.Event = id.RoomID(room), id.EventID(ev), json.RawMessage(actions), json.RawMessage(event)
		out = append(out, n)
	}
	return out, rows.Err()
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
	err := s.db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM push_actions WHERE user_id = $1 AND is_read = FALSE`, string(user)).Scan(&n)
	return n, err
}

package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// ListAccounts implements storage.AdminStore.
func (s *Store) ListAccounts(ctx context.Context, f storage.AccountFilter) ([]storage.AccountInfo, int, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Name != "" {
		p := arg("%" + likeEscape(strings.ToLower(f.Name)) + "%")
		where = append(where, "(LOWER(a.user_id) LIKE "+p+" ESCAPE '\\' OR LOWER(COALESCE(dn.value, '')) LIKE "+p+" ESCAPE '\\')")
	}
	if !f.Guests {
		where = append(where, "NOT a.is_guest")
	}
	if !f.Deactivated {
		where = append(where, "NOT a.deactivated")
	}
	if f.Admins != nil {
		where = append(where, "a.is_admin = "+arg(*f.Admins))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	from := ` FROM accounts a LEFT JOIN profiles dn ON dn.user_id = a.user_id AND dn.field = 'displayname'
		LEFT JOIN profiles av ON av.user_id = a.user_id AND av.field = 'avatar_url'`
	var total int
	if err := s.db.r.QueryRowContext(ctx, "SELECT COUNT(*)"+from+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count accounts: %w", err)
	}
	order := map[string]string{"displayname": "COALESCE(dn.value, '')", "creation_ts": "a.created_ts", "admin": "a.is_admin"}[f.OrderBy]
	if order == "" {
		order = "a.user_id"
	}
	dir := " ASC"
	if f.Desc {
		dir = " DESC"
	}
	q := "SELECT a.user_id, a.password_hash, a.is_admin, a.is_guest, a.deactivated, a.created_ts, COALESCE(dn.value, ''), COALESCE(av.value, '')" +
		from + cond + " ORDER BY " + order + dir + ", a.user_id" + dir + " LIMIT " + arg(f.Limit) + " OFFSET " + arg(f.From)
	rows, err := s.db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	out := []storage.AccountInfo{}
	for rows.Next() {
		var a storage.AccountInfo
		var dn, av string
		if err := rows.Scan(&a.UserID, &a.PasswordHash, &a.IsAdmin, &a.IsGuest, &a.Deactivated, &a.CreatedTS, &dn, &av); err != nil {
			return nil, 0, err
		}
		_ = json.Unmarshal([]byte(dn), &a.DisplayName)
		_ = json.Unmarshal([]byte(av), &a.AvatarURL)
		out = append(out, a)
	}
	return out, total, rows.Err()
}

func (s *Store) execOne(ctx context.Context, q string, args ...any) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		return nil
	})
}

// SetAccountAdmin implements storage.AdminStore.
func (s *Store) SetAccountAdmin(ctx context.Context, userID id.UserID, admin bool) error {
	defer s.tokens.invalidate()
	return s.execOne(ctx, `UPDATE accounts SET is_admin = $1 WHERE user_id = $2`, admin, userID)
}

// ReactivateAccount implements storage.AdminStore.
func (s *Store) ReactivateAccount(ctx context.Context, userID id.UserID) error {
	defer s.tokens.invalidate()
	return s.execOne(ctx, `UPDATE accounts SET deactivated = FALSE WHERE user_id = $1`, userID)
}

// ListRooms implements storage.AdminStore.
func (s *Store) ListRooms(ctx context.Context) ([]storage.Room, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT room_id, room_version, creator, created_ts, current_group, is_public FROM rooms ORDER BY room_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.Room
	for rows.Next() {
		var r storage.Room
		if err := rows.Scan(&r.RoomID, &r.Version, &r.Creator, &r.CreatedTS, &r.CurrentGroup, &r.IsPublic); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

const reportCols = `id, received_ts, kind, room_id, event_id, target_user_id, user_id, reason, score`

func scanReport(sc interface{ Scan(...any) error }) (*storage.Report, error) {
	var r storage.Report
	var reason sql.NullString
	var score sql.NullInt64
	if err := sc.Scan(&r.ID, &r.ReceivedTS, &r.Kind, &r.RoomID, &r.EventID, &r.TargetUserID, &r.UserID, &reason, &score); err != nil {
		return nil, err
	}
	if reason.Valid {
		r.Reason = &reason.String
	}
	if score.Valid {
		r.Score = &score.Int64
	}
	return &r, nil
}

// CreateReport implements storage.AdminStore.
func (s *Store) CreateReport(ctx context.Context, r storage.Report) (int64, error) {
	var reportID int64
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO event_reports (received_ts, kind, room_id, event_id, target_user_id, user_id, reason, score)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`, r.ReceivedTS, r.Kind, r.RoomID, r.EventID, r.TargetUserID, r.UserID, r.Reason, r.Score).Scan(&reportID)
	})
	return reportID, err
}

// ListReports implements storage.AdminStore.
func (s *Store) ListReports(ctx context.Context, from, limit int, oldestFirst bool, roomID id.RoomID, userID id.UserID) ([]storage.Report, int, error) {
	var (
		where []string
		args  []any
	)
	if roomID != "" {
		args = append(args, roomID)
		where = append(where, fmt.Sprintf("room_id = $%d", len(args)))
	}
	if userID != "" {
		args = append(args, userID)
		where = append(where, fmt.Sprintf("user_id = $%d", len(args)))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.db.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM event_reports"+cond, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	dir := "DESC"
	if oldestFirst {
		dir = "ASC"
	}
	args = append(args, limit, from)
	rows, err := s.db.r.QueryContext(ctx, fmt.Sprintf("SELECT "+reportCols+" FROM event_reports"+cond+" ORDER BY received_ts %s, id %s LIMIT $%d OFFSET $%d", dir, dir, len(args)-1, len(args)), args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []storage.Report{}
	for rows.Next() {
		r, err := scanReport(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, *r)
	}
	return out, total, rows.Err()
}

// GetReport implements storage.AdminStore.
func (s *Store) GetReport(ctx context.Context, reportID int64) (*storage.Report, error) {
	r, err := scanReport(s.db.r.QueryRowContext(ctx, "SELECT "+reportCols+" FROM event_reports WHERE id = $1", reportID))
	return r, NotFound(err)
}

// DeleteReport implements storage.AdminStore.
func (s *Store) DeleteReport(ctx context.Context, reportID int64) error {
	return s.execOne(ctx, `DELETE FROM event_reports WHERE id = $1`, reportID)
}

// AppendAudit implements storage.AdminStore.
func (s *Store) AppendAudit(ctx context.Context, e storage.AuditEntry) error {
	details := string(e.Details)
	if details == "" {
		details = "{}"
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_log (ts, action, user_id, target, device_id, ip, details) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			e.TS, e.Action, e.UserID, e.Target, e.DeviceID, e.IP, details)
		return err
	})
}

// ListAudit implements storage.AdminStore.
func (s *Store) ListAudit(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEntry, error) {
	var (
		where = []string{"1 = 1"}
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.UserID != "" {
		add("user_id = $%d", f.UserID)
	}
	if f.Action != "" {
		add("action = $%d", f.Action)
	}
	if f.From > 0 {
		add("ts >= $%d", f.From)
	}
	if f.To > 0 {
		add("ts <= $%d", f.To)
	}
	if f.After > 0 {
		add("id > $%d", f.After)
	}
	args = append(args, f.Limit)
	rows, err := s.db.r.QueryContext(ctx, fmt.Sprintf(`SELECT id, ts, action, user_id, target, device_id, ip, details FROM audit_log
		WHERE %s ORDER BY id LIMIT $%d`, strings.Join(where, " AND "), len(args)), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []storage.AuditEntry{}
	for rows.Next() {
		var e storage.AuditEntry
		var details string
		if err := rows.Scan(&e.ID, &e.TS, &e.Action, &e.UserID, &e.Target, &e.DeviceID, &e.IP, &details); err != nil {
			return nil, err
		}
		e.Details = json.RawMessage(details)
		out = append(out, e)
	}
	return out, rows.Err()
}

// ServerNoticeRoom implements storage.AdminStore.
func (s *Store) ServerNoticeRoom(ctx context.Context, userID id.UserID) (id.RoomID, error) {
	var room id.RoomID
	err := s.db.r.QueryRowContext(ctx, `SELECT room_id FROM server_notice_rooms WHERE user_id = $1`, userID).Scan(&room)
	return room, NotFound(err)
}

// SetServerNoticeRoom implements storage.AdminStore.
func (s *Store) SetServerNoticeRoom(ctx context.Context, userID id.UserID, roomID id.RoomID) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO server_notice_rooms (user_id, room_id) VALUES ($1, $2)
			ON CONFLICT (user_id) DO UPDATE SET room_id = excluded.room_id`, userID, roomID)
		return err
	})
}

// SetRestrictions implements storage.RestrictionStore.
func (s *Store) SetRestrictions(ctx context.Context, userID id.UserID, r storage.Restrictions) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		if r == (storage.Restrictions{}) {
			_, err = tx.ExecContext(ctx, `DELETE FROM user_restrictions WHERE user_id = $1`, userID)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO user_restrictions (user_id, locked, suspended, shadow_banned) VALUES ($1, $2, $3, $4)
			ON CONFLICT (user_id) DO UPDATE SET locked = excluded.locked, suspended = excluded.suspended, shadow_banned = excluded.shadow_banned`,
				userID, r.Locked, r.Suspended, r.ShadowBanned)
		}
		if err != nil {
			return err
		}
		return s.announce(ctx, tx, storage.TopicModeration)
	})
}

// AllRestrictions implements storage.RestrictionStore.
func (s *Store) AllRestrictions(ctx context.Context) (map[id.UserID]storage.Restrictions, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT user_id, locked, suspended, shadow_banned FROM user_restrictions`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[id.UserID]storage.Restrictions{}
	for rows.Next() {
		var u id.UserID
		var r storage.Restrictions
		if err := rows.Scan(&u, &r.Locked, &r.Suspended, &r.ShadowBanned); err != nil {
			return nil, err
		}
		out[u] = r
	}
	return out, rows.Err()
}

// SetRoomBlocked implements storage.RestrictionStore.
func (s *Store) SetRoomBlocked(ctx context.Context, roomID id.RoomID, blocked bool, by id.UserID) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		if !blocked {
			_, err = tx.ExecContext(ctx, `DELETE FROM blocked_rooms WHERE room_id = $1`, roomID)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO blocked_rooms (room_id, blocked_by) VALUES ($1, $2) ON CONFLICT (room_id) DO NOTHING`, roomID, by)
		}
		if err != nil {
			return err
		}
		return s.announce(ctx, tx, storage.TopicModeration)
	})
}

// BlockedRooms implements storage.RestrictionStore.
func (s *Store) BlockedRooms(ctx context.Context) (map[id.RoomID]id.UserID, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT room_id, blocked_by FROM blocked_rooms`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[id.RoomID]id.UserID{}
	for rows.Next() {
		var r id.RoomID
		var u id.UserID
		if err := rows.Scan(&r, &u); err != nil {
			return nil, err
		}
		out[r] = u
	}
	return out, rows.Err()
}

// SetRateLimitOverride implements storage.RestrictionStore.
func (s *Store) SetRateLimitOverride(ctx context.Context, userID id.UserID, o *storage.RateLimitOverride) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		if o == nil {
			_, err = tx.ExecContext(ctx, `DELETE FROM ratelimit_overrides WHERE user_id = $1`, userID)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO ratelimit_overrides (user_id, messages_per_second, burst_count) VALUES ($1, $2, $3)
			ON CONFLICT (user_id) DO UPDATE SET messages_per_second = excluded.messages_per_second, burst_count = excluded.burst_count`,
				userID, o.MessagesPerSecond, o.BurstCount)
		}
		if err != nil {
			return err
		}
		return s.announce(ctx, tx, storage.TopicModeration)
	})
}

// RateLimitOverrides implements storage.RestrictionStore.
func (s *Store) RateLimitOverrides(ctx context.Context) (map[id.UserID]storage.RateLimitOverride, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT user_id, messages_per_second, burst_count FROM ratelimit_overrides`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[id.UserID]storage.RateLimitOverride{}
	for rows.Next() {
		var u id.UserID
		var o storage.RateLimitOverride
		if err := rows.Scan(&u, &o.MessagesPerSecond, &o.BurstCount); err != nil {
			return nil, err
		}
		out[u] = o
	}
	return out, rows.Err()
}

// SetAwaitingApproval implements storage.RestrictionStore.
func (s *Store) SetAwaitingApproval(ctx context.Context, userID id.UserID, awaiting bool) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		if !awaiting {
			_, err := tx.ExecContext(ctx, `DELETE FROM awaiting_approval WHERE user_id = $1`, userID)
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO awaiting_approval (user_id, registered_ts) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING`,
			userID, time.Now().UnixMilli())
		return err
	})
}

// AwaitingApproval implements storage.RestrictionStore.
func (s *Store) AwaitingApproval(ctx context.Context, userID id.UserID) (bool, error) {
	var n int
	err := s.db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM awaiting_approval WHERE user_id = $1`, userID).Scan(&n)
	return n > 0, err
}

// ErasedUsers implements storage.RestrictionStore.
func (s *Store) ErasedUsers(ctx context.Context, users []id.UserID) (map[id.UserID]bool, error) {
	out := map[id.UserID]bool{}
	for start := 0; start < len(users); start += 500 {
		chunk := users[start:min(start+500, len(users))]
		args := make([]any, len(chunk))
		for i, u := range chunk {
			args[i] = u
		}
		rows, err := s.db.r.QueryContext(ctx, `SELECT user_id FROM erased_users WHERE user_id IN `+In(1, len(chunk)), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var u id.UserID
			if err := rows.Scan(&u); err != nil {
				rows.Close()
				return nil, err
			}
			out[u] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

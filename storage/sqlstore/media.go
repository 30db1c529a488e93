package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tidwall/gjson"

	"maunium.net/go/mautrix/id"

	"parley/storage"
)

const mediaColumns = `origin, media_id, user_id, content_type, upload_name, size, sha256,
	created_ts, uploaded_ts, expires_ts, last_access_ts, quarantined_by`

func scanMedia(row interface{ Scan(...any) error }) (*storage.Media, error) {
	var m storage.Media
	var user string
	err := row.Scan(&m.Origin, &m.MediaID, &user, &m.ContentType, &m.UploadName, &m.Size, &m.SHA256,
		&m.CreatedTS, &m.UploadedTS, &m.ExpiresTS, &m.LastAccessTS, &m.QuarantinedBy)
	m.UserID = id.UserID(user)
	return &m, err
}

// CreatePendingMedia implements storage.MediaStore.
func (s *Store) CreatePendingMedia(ctx context.Context, m storage.Media, maxPending int, now int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM media WHERE user_id = $1 AND uploaded_ts = 0 AND expires_ts > $2`,
			m.UserID, now).Scan(&n); err != nil {
			return err
		}
		if n >= maxPending {
			return storage.ErrTooLarge
		}
		return insertMedia(ctx, tx, &m)
	})
}

func insertMedia(ctx context.Context, tx *sql.Tx, m *storage.Media) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO media (`+mediaColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		m.Origin, m.MediaID, string(m.UserID), m.ContentType, m.UploadName, m.Size, m.SHA256,
		m.CreatedTS, m.UploadedTS, m.ExpiresTS, m.LastAccessTS, m.QuarantinedBy)
	return Conflict(err)
}

// quarantinedBy returns who quarantined content with this hash, or "".
func quarantinedBy(ctx context.Context, tx *sql.Tx, sha string) (string, error) {
	var by string
	err := tx.QueryRowContext(ctx, `SELECT quarantined_by FROM media WHERE sha256 = $1 AND quarantined_by <> '' LIMIT 1`, sha).Scan(&by)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return by, err
}

// StoreMedia implements storage.MediaStore.
func (s *Store) StoreMedia(ctx context.Context, m *storage.Media) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		by, err := quarantinedBy(ctx, tx, m.SHA256)
		if err != nil {
			return err
		}
		if by != "" {
			m.QuarantinedBy = by
		}
		return insertMedia(ctx, tx, m)
	})
}

// CompletePendingMedia implements storage.MediaStore.
func (s *Store) CompletePendingMedia(ctx context.Context, m *storage.Media, now int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		cur, err := scanMedia(tx.QueryRowContext(ctx, `SELECT `+mediaColumns+` FROM media WHERE origin = $1 AND media_id = $2`, m.Origin, m.MediaID))
		if err != nil {
			return NotFound(err)
		}
		switch {
		case cur.UserID != m.UserID:
			return storage.ErrForbidden
		case !cur.Pending():
			return storage.ErrConflict
		case cur.ExpiresTS != 0 && cur.ExpiresTS <= now:
			return storage.ErrNotFound
		}
		by, err := quarantinedBy(ctx, tx, m.SHA256)
		if err != nil {
			return err
		}
		m.QuarantinedBy = by
		m.CreatedTS = cur.CreatedTS
		_, err = tx.ExecContext(ctx, `UPDATE media SET content_type = $1, upload_name = $2, size = $3, sha256 = $4,
			uploaded_ts = $5, expires_ts = 0, quarantined_by = $6 WHERE origin = $7 AND media_id = $8`,
			m.ContentType, m.UploadName, m.Size, m.SHA256, m.UploadedTS, by, m.Origin, m.MediaID)
		return err
	})
}

// GetMedia implements storage.MediaStore.
func (s *Store) GetMedia(ctx context.Context, origin, mediaID string) (*storage.Media, error) {
	m, err := scanMedia(s.db.r.QueryRowContext(ctx, `SELECT `+mediaColumns+` FROM media WHERE origin = $1 AND media_id = $2`, origin, mediaID))
	if err != nil {
		return nil, NotFound(err)
	}
	return m, nil
}

// TouchMedia implements storage.MediaStore.
func (s *Store) TouchMedia(ctx context.Context, origin, mediaID string, ts int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE media SET last_access_ts = $1 WHERE origin = $2 AND media_id = $3`, ts, origin, mediaID)
		return err
	})
}

// quarantineHashes quarantines every unquarantined row whose content has one of hashes.
func quarantineHashes(ctx context.Context, tx *sql.Tx, hashes []string, by string) (int, error) {
	total := 0
	for start := 0; start < len(hashes); start += 500 {
		chunk := hashes[start:min(start+500, len(hashes))]
		args := []any{by}
		for _, h := range chunk {
			args = append(args, h)
		}
		res, err := tx.ExecContext(ctx, `UPDATE media SET quarantined_by = $1 WHERE quarantined_by = '' AND sha256 IN `+In(2, len(chunk)), args...)
		if err != nil {
			return 0, err
		}
		n, _ := res.RowsAffected()
		total += int(n)
	}
	return total, nil
}

// quarantineRows quarantines the rows selected by where (its placeholders
// numbered from the start it is given, bound to args) and everything sharing
// their content. SQLite numbers $N parameters by first appearance, so the
// placeholders must appear in order.
func quarantineRows(ctx context.Context, tx *sql.Tx, by string, where func(start int) string, args ...any) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT sha256 FROM media WHERE sha256 <> '' AND `+where(1), args...)
	if err != nil {
		return 0, err
	}
	var hashes []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return 0, err
		}
		hashes = append(hashes, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	// Pending rows have no content yet: quarantine them by ID.
	res, err := tx.ExecContext(ctx, `UPDATE media SET quarantined_by = $1 WHERE quarantined_by = '' AND sha256 = '' AND `+where(2), append([]any{by}, args...)...)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	m, err := quarantineHashes(ctx, tx, hashes, by)
	return int(n) + m, err
}

func whereRef(start int) string {
	return fmt.Sprintf("origin = $%d AND media_id = $%d", start, start+1)
}

func whereUser(start int) string { return fmt.Sprintf("user_id = $%d", start) }

// QuarantineMedia implements storage.MediaStore.
func (s *Store) QuarantineMedia(ctx context.Context, ref storage.MediaRef, by string) (int, error) {
	var n int
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM media WHERE origin = $1 AND media_id = $2`, ref.Origin, ref.MediaID).Scan(&one); err != nil {
			return NotFound(err)
		}
		var err error
		n, err = quarantineRows(ctx, tx, by, whereRef, ref.Origin, ref.MediaID)
		return err
	})
	return n, err
}

// UnquarantineMedia implements storage.MediaStore.
func (s *Store) UnquarantineMedia(ctx context.Context, ref storage.MediaRef) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		var sha string
		if err := tx.QueryRowContext(ctx, `SELECT sha256 FROM media WHERE origin = $1 AND media_id = $2`, ref.Origin, ref.MediaID).Scan(&sha); err != nil {
			return NotFound(err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE media SET quarantined_by = '' WHERE origin = $1 AND media_id = $2`, ref.Origin, ref.MediaID); err != nil {
			return err
		}
		if sha == "" {
			return nil
		}
		_, err := tx.ExecContext(ctx, `UPDATE media SET quarantined_by = '' WHERE sha256 = $1`, sha)
		return err
	})
}

// QuarantineMediaRefs implements storage.MediaStore.
func (s *Store) QuarantineMediaRefs(ctx context.Context, refs []storage.MediaRef, by string) (int, error) {
	total := 0
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		total = 0
		for _, ref := range refs {
			n, err := quarantineRows(ctx, tx, by, whereRef, ref.Origin, ref.MediaID)
			if err != nil {
				return err
			}
			total += n
		}
		return nil
	})
	return total, err
}

// QuarantineUserMedia implements storage.MediaStore.
func (s *Store) QuarantineUserMedia(ctx context.Context, userID id.UserID, by string) (int, error) {
	var n int
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = quarantineRows(ctx, tx, by, whereUser, string(userID))
		return err
	})
	return n, err
}

// DeleteMedia implements storage.MediaStore.
func (s *Store) DeleteMedia(ctx context.Context, refs []storage.MediaRef) ([]storage.MediaRef, []string, error) {
	var deleted []storage.MediaRef
	var freed []string
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		deleted, freed = nil, nil
		candidates := map[string]bool{}
		for _, ref := range refs {
			var sha string
			err := tx.QueryRowContext(ctx, `SELECT sha256 FROM media WHERE origin = $1 AND media_id = $2`, ref.Origin, ref.MediaID).Scan(&sha)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			if sha != "" {
				candidates[sha] = true
			}
			rows, err := tx.QueryContext(ctx, `SELECT sha256 FROM media_thumbnails WHERE origin = $1 AND media_id = $2`, ref.Origin, ref.MediaID)
			if err != nil {
				return err
			}
			for rows.Next() {
				var h string
				if err := rows.Scan(&h); err != nil {
					rows.Close()
					return err
				}
				candidates[h] = true
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM media_thumbnails WHERE origin = $1 AND media_id = $2`, ref.Origin, ref.MediaID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM media WHERE origin = $1 AND media_id = $2`, ref.Origin, ref.MediaID); err != nil {
				return err
			}
			deleted = append(deleted, ref)
		}
		for h := range candidates {
			used, err := hashUsed(ctx, tx, h)
			if err != nil {
				return err
			}
			if !used {
				freed = append(freed, h)
			}
		}
		return nil
	})
	return deleted, freed, err
}

// hashUsed reports whether any media or thumbnail row references the blob.
func hashUsed(ctx context.Context, tx *sql.Tx, sha string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM media WHERE sha256 = $1) + (SELECT COUNT(*) FROM media_thumbnails WHERE sha256 = $1)`, sha).Scan(&n)
	return n > 0, err
}

// BlobInUse implements storage.MediaStore.
func (s *Store) BlobInUse(ctx context.Context, sha string) (bool, error) {
	var n int
	err := s.db.r.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM media WHERE sha256 = $1) + (SELECT COUNT(*) FROM media_thumbnails WHERE sha256 = $1)`, sha).Scan(&n)
	return n > 0, err
}

func (s *Store) listRefs(ctx context.Context, query string, args ...any) ([]storage.MediaRef, error) {
	rows, err := s.db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.MediaRef
	for rows.Next() {
		var r storage.MediaRef
		if err := rows.Scan(&r.Origin, &r.MediaID); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// mediaOrderColumns maps Synapse's order_by values to columns; media has no
// safe_from_quarantine flag (nothing is protected), so that order is by ID alone.
var mediaOrderColumns = map[string]string{
	"media_id": "", "upload_name": "upload_name", "created_ts": "created_ts", "last_access_ts": "last_access_ts",
	"media_length": "size", "media_type": "content_type", "quarantined_by": "quarantined_by", "safe_from_quarantine": "",
}

// ListUserMedia implements storage.MediaStore.
func (s *Store) ListUserMedia(ctx context.Context, userID id.UserID, q storage.MediaListQuery) ([]storage.Media, int, error) {
	var total int
	if err := s.db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM media WHERE user_id = $1`, string(userID)).Scan(&total); err != nil {
		return nil, 0, err
	}
	col, ok := mediaOrderColumns[q.OrderBy]
	if !ok || q.OrderBy == "" {
		col = "created_ts"
	}
	dir := " ASC"
	if q.Desc {
		dir = " DESC"
	}
	order := "media_id" + dir
	if col != "" {
		order = col + dir + ", media_id"
	}
	rows, err := s.db.r.QueryContext(ctx, `SELECT `+mediaColumns+` FROM media WHERE user_id = $1 ORDER BY `+order+` LIMIT $2 OFFSET $3`,
		string(userID), q.Limit, q.From)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []storage.Media{}
	for rows.Next() {
		m, err := scanMedia(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, *m)
	}
	return out, total, rows.Err()
}

// LocalMediaBefore implements storage.MediaStore.
func (s *Store) LocalMediaBefore(ctx context.Context, localServer string, ts, sizeGT int64) ([]storage.MediaRef, error) {
	return s.listRefs(ctx, `SELECT origin, media_id FROM media WHERE origin = $1 AND uploaded_ts <> 0
		AND (CASE WHEN last_access_ts > 0 THEN last_access_ts ELSE uploaded_ts END) < $2 AND size > $3
		ORDER BY created_ts, media_id`, localServer, ts, sizeGT)
}

// AvatarMediaURIs implements storage.MediaStore.
func (s *Store) AvatarMediaURIs(ctx context.Context) ([]string, error) {
	var out []string
	vals, err := queryColumn[string](ctx, s.db.r, `SELECT value FROM profiles WHERE field = 'avatar_url'`)
	if err != nil {
		return nil, err
	}
	for _, v := range vals {
		var uri string
		if json.Unmarshal([]byte(v), &uri) == nil && uri != "" {
			out = append(out, uri)
		}
	}
	pdus, err := queryColumn[string](ctx, s.db.r, `SELECT e.pdu FROM current_state c JOIN events e ON e.event_id = c.event_id
		WHERE c.type IN ('m.room.avatar', 'm.room.member')`)
	if err != nil {
		return nil, err
	}
	for _, p := range pdus {
		for _, key := range []string{"content.url", "content.avatar_url"} {
			if v := gjson.Get(p, key); v.Type == gjson.String && v.Str != "" {
				out = append(out, v.Str)
			}
		}
	}
	return out, nil
}

// RemoteMediaBefore implements storage.MediaStore.
func (s *Store) RemoteMediaBefore(ctx context.Context, localServer string, ts int64) ([]storage.MediaRef, error) {
	return s.listRefs(ctx, `SELECT origin, media_id FROM media WHERE origin <> $1 AND last_access_ts < $2`, localServer, ts)
}

// ExpiredPendingMedia implements storage.MediaStore.
func (s *Store) ExpiredPendingMedia(ctx context.Context, now int64) ([]storage.MediaRef, error) {
	return s.listRefs(ctx, `SELECT origin, media_id FROM media WHERE uploaded_ts = 0 AND expires_ts <> 0 AND expires_ts <= $1`, now)
}

const thumbColumns = `origin, media_id, width, height, method, animated, content_type, size, sha256, actual_width, actual_height, created_ts`

func scanThumb(row interface{ Scan(...any) error }) (*storage.Thumbnail, error) {
	var t storage.Thumbnail
	err := row.Scan(&t.Origin, &t.MediaID, &t.Width, &t.Height, &t.Method, &t.Animated, &t.ContentType, &t.Size, &t.SHA256,
		&t.ActualWidth, &t.ActualHeight, &t.CreatedTS)
	return &t, err
}

// StoreThumbnail implements storage.MediaStore.
func (s *Store) StoreThumbnail(ctx context.Context, th storage.Thumbnail) (string, error) {
	var freed string
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		freed = ""
		var old string
		err := tx.QueryRowContext(ctx, `SELECT sha256 FROM media_thumbnails WHERE origin = $1 AND media_id = $2 AND width = $3 AND height = $4 AND method = $5 AND animated = $6`,
			th.Origin, th.MediaID, th.Width, th.Height, th.Method, th.Animated).Scan(&old)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO media_thumbnails (`+thumbColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			ON CONFLICT (origin, media_id, width, height, method, animated) DO UPDATE SET content_type = excluded.content_type,
			size = excluded.size, sha256 = excluded.sha256, actual_width = excluded.actual_width, actual_height = excluded.actual_height,
			created_ts = excluded.created_ts`,
			th.Origin, th.MediaID, th.Width, th.Height, th.Method, th.Animated, th.ContentType, th.Size, th.SHA256,
			th.ActualWidth, th.ActualHeight, th.CreatedTS); err != nil {
			return err
		}
		if old != "" && old != th.SHA256 {
			used, err := hashUsed(ctx, tx, old)
			if err != nil {
				return err
			}
			if !used {
				freed = old
			}
		}
		return nil
	})
	return freed, err
}

// GetThumbnail implements storage.MediaStore.
func (s *Store) GetThumbnail(ctx context.Context, origin, mediaID string, width, height int, method string, animated bool) (*storage.Thumbnail, error) {
	t, err := scanThumb(s.db.r.QueryRowContext(ctx, `SELECT `+thumbColumns+` FROM media_thumbnails
		WHERE origin = $1 AND media_id = $2 AND width = $3 AND height = $4 AND method = $5 AND animated = $6`,
		origin, mediaID, width, height, method, animated))
	if err != nil {
		return nil, NotFound(err)
	}
	return t, nil
}

// Thumbnails implements storage.MediaStore.
func (s *Store) Thumbnails(ctx context.Context, origin, mediaID string) ([]storage.Thumbnail, error) {
	rows, err := s.db.r.QueryContext(ctx, `SELECT `+thumbColumns+` FROM media_thumbnails WHERE origin = $1 AND media_id = $2
		ORDER BY width, height`, origin, mediaID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.Thumbnail
	for rows.Next() {
		t, err := scanThumb(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *t)
	}
	return out, rows.Err()
}

// GetURLPreview implements storage.MediaStore.
func (s *Store) GetURLPreview(ctx context.Context, url string, now int64) ([]byte, error) {
	var og string
	err := s.db.r.QueryRowContext(ctx, `SELECT og FROM url_previews WHERE url = $1 AND expires_ts > $2`, url, now).Scan(&og)
	if err != nil {
		return nil, NotFound(err)
	}
	return []byte(og), nil
}

// StoreURLPreview implements storage.MediaStore.
func (s *Store) StoreURLPreview(ctx context.Context, url string, og []byte, fetchedTS, expiresTS int64) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO url_previews (url, og, fetched_ts, expires_ts) VALUES ($1, $2, $3, $4)
			ON CONFLICT (url) DO UPDATE SET og = excluded.og, fetched_ts = excluded.fetched_ts, expires_ts = excluded.expires_ts`,
			url, string(og), fetchedTS, expiresTS)
		return err
	})
}

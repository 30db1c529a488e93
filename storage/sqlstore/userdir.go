package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// likeEscape escapes the LIKE wildcards of s (escape character '\').
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// SearchUserDirectory implements storage.UserDirectoryStore. Rows are
// prefiltered in SQL (user ID or member event text contains the term) and
// matched exactly on the display name in Go. (SQLite numbers $N parameters
// in order of first appearance, so $1 must come first in the SQL text.)
func (s *Store) SearchUserDirectory(ctx context.Context, requester id.UserID, term string, limit int, localServer string) ([]storage.DirectoryUser, bool, error) {
	term = strings.ToLower(strings.TrimSpace(term))
	found := map[id.UserID]storage.DirectoryUser{}
	matches := func(u storage.DirectoryUser) bool {
		return term == "" || strings.Contains(strings.ToLower(string(u.UserID)), term) || strings.Contains(strings.ToLower(u.DisplayName), term)
	}
	// Rooms whose members the requester may find: rooms they are joined to
	// and public rooms (true): a public join rule or world-readable history. The requester finds themselves only through
	// a public room, as Synapse: sharing a private room with oneself is not
	// sharing it.
	rooms := map[string]bool{}
	rows, err := s.db.r.QueryContext(ctx, `SELECT cs.room_id, cs.type, e.pdu FROM current_state cs JOIN events e ON e.event_id = cs.event_id
		WHERE (cs.type = 'm.room.member' AND cs.state_key = $1 AND cs.membership = 'join')
		OR (cs.type IN ('m.room.join_rules', 'm.room.history_visibility') AND cs.state_key = '')`, requester)
	if err != nil {
		return nil, false, fmt.Errorf("directory rooms: %w", err)
	}
	for rows.Next() {
		var room, typ, pdu string
		if err := rows.Scan(&room, &typ, &pdu); err != nil {
			rows.Close()
			return nil, false, err
		}
		if gjson.Get(pdu, "content.join_rule").Str == "public" || gjson.Get(pdu, "content.history_visibility").Str == "world_readable" {
			rooms[room] = true
		} else if _, ok := rooms[room]; !ok && typ == "m.room.member" {
			rooms[room] = false
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	roomList := make([]string, 0, len(rooms))
	for r := range rooms {
		roomList = append(roomList, r)
	}
	sort.Strings(roomList)
	like := "%" + likeEscape(term) + "%"
	for start := 0; start < len(roomList); start += 500 {
		chunk := roomList[start:min(start+500, len(roomList))]
		args := []any{like}
		for _, r := range chunk {
			args = append(args, r)
		}
		rows, err := s.db.r.QueryContext(ctx, `SELECT cs.room_id, cs.state_key, e.pdu FROM current_state cs JOIN events e ON e.event_id = cs.event_id
			WHERE (LOWER(cs.state_key) LIKE $1 ESCAPE '\' OR LOWER(e.pdu) LIKE $1 ESCAPE '\')
			AND cs.type = 'm.room.member' AND cs.membership = 'join' AND cs.room_id IN `+In(2, len(chunk)), args...)
		if err != nil {
			return nil, false, fmt.Errorf("directory members: %w", err)
		}
		for rows.Next() {
			var room, user, pdu string
			if err := rows.Scan(&room, &user, &pdu); err != nil {
				rows.Close()
				return nil, false, err
			}
			if id.UserID(user) == requester && !rooms[room] {
				continue
			}
			c := gjson.GetMany(pdu, "content.displayname", "content.avatar_url")
			u := storage.DirectoryUser{UserID: id.UserID(user), DisplayName: c[0].Str, AvatarURL: c[1].Str}
			if matches(u) {
				found[u.UserID] = u
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, false, err
		}
	}
	if localServer != "" {
		rows, err := s.db.r.QueryContext(ctx, `SELECT a.user_id, COALESCE(dn.value, ''), COALESCE(av.value, '') FROM accounts a
			LEFT JOIN profiles dn ON dn.user_id = a.user_id AND dn.field = 'displayname'
			LEFT JOIN profiles av ON av.user_id = a.user_id AND av.field = 'avatar_url'
			WHERE (LOWER(a.user_id) LIKE $1 ESCAPE '\' OR LOWER(dn.value) LIKE $1 ESCAPE '\')
			AND NOT a.deactivated AND NOT a.is_guest AND a.user_id LIKE $2 ESCAPE '\'`, like, "%:"+likeEscape(localServer))
		if err != nil {
			return nil, false, fmt.Errorf("directory accounts: %w", err)
		}
		for rows.Next() {
			var user, dn, av string
			if err := rows.Scan(&user, &dn, &av); err != nil {
				rows.Close()
				return nil, false, err
			}
			u := storage.DirectoryUser{UserID: id.UserID(user)}
			// Profile values are stored as JSON.
			_ = json.Unmarshal([]byte(dn), &u.DisplayName)
			_ = json.Unmarshal([]byte(av), &u.AvatarURL)
			if _, ok := found[u.UserID]; !ok && matches(u) {
				found[u.UserID] = u
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, false, err
		}
	}
	out := make([]storage.DirectoryUser, 0, len(found))
	for _, u := range found {
		out = append(out, u)
	}
	// Exact and prefix matches first, then by display name and user ID.
	score := func(u storage.DirectoryUser) int {
		dn, uid := strings.ToLower(u.DisplayName), strings.ToLower(string(u.UserID))
		switch {
		case dn == term || strings.TrimPrefix(strings.SplitN(uid, ":", 2)[0], "@") == term:
			return 0
		case strings.HasPrefix(dn, term) || strings.HasPrefix(uid, "@"+term):
			return 1
		}
		return 2
	}
	sort.Slice(out, func(i, j int) bool {
		si, sj := score(out[i]), score(out[j])
		if si != sj {
			return si < sj
		}
		if out[i].DisplayName != out[j].DisplayName {
			return out[i].DisplayName < out[j].DisplayName
		}
		return out[i].UserID < out[j].UserID
	})
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

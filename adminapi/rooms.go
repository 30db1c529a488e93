package adminapi

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/eventutil"
	"parley/internal/httputil"
	"parley/storage"
)

// roomJSON is a room as Synapse's admin API lists it.
type roomJSON struct {
	RoomID             id.RoomID `json:"room_id"`
	Name               *string   `json:"name"`
	Topic              *string   `json:"topic,omitempty"`
	Avatar             *string   `json:"avatar,omitempty"`
	CanonicalAlias     *string   `json:"canonical_alias"`
	JoinedMembers      int       `json:"joined_members"`
	JoinedLocalMembers int       `json:"joined_local_members"`
	Version            string    `json:"version"`
	Creator            id.UserID `json:"creator"`
	Encryption         *string   `json:"encryption"`
	Federatable        bool      `json:"federatable"`
	Public             bool      `json:"public"`
	JoinRules          *string   `json:"join_rules"`
	GuestAccess        *string   `json:"guest_access"`
	HistoryVisibility  *string   `json:"history_visibility"`
	StateEvents        int       `json:"state_events"`
	RoomType           *string   `json:"room_type"`
	createdTS          int64
}

func strField(ev *storage.Event, path string) *string {
	if ev == nil {
		return nil
	}
	v := gjson.GetBytes(ev.JSON, path)
	if v.Type != gjson.String {
		return nil
	}
	return &v.Str
}

// roomInfo summarises a room from its current state.
func (a *API) roomInfo(ctx context.Context, room storage.Room) (*roomJSON, error) {
	state, err := a.store.CurrentState(ctx, room.RoomID)
	if err != nil {
		return nil, err
	}
	byType := map[string]*storage.Event{}
	out := &roomJSON{RoomID: room.RoomID, Version: string(room.Version), Creator: room.Creator, Public: room.IsPublic,
		StateEvents: len(state), Federatable: true, createdTS: room.CreatedTS}
	suffix := ":" + a.cfg.ServerName
	for _, ev := range state {
		if ev.StateKey != nil && *ev.StateKey == "" {
			byType[ev.Type] = ev
		}
		if ev.Type == "m.room.member" && ev.Membership == "join" && ev.StateKey != nil {
			out.JoinedMembers++
			if strings.HasSuffix(*ev.StateKey, suffix) {
				out.JoinedLocalMembers++
			}
		}
	}
	out.Name = strField(byType["m.room.name"], "content.name")
	out.Topic = strField(byType["m.room.topic"], "content.topic")
	out.Avatar = strField(byType["m.room.avatar"], "content.url")
	out.CanonicalAlias = strField(byType["m.room.canonical_alias"], "content.alias")
	out.Encryption = strField(byType["m.room.encryption"], "content.algorithm")
	out.JoinRules = strField(byType["m.room.join_rules"], "content.join_rule")
	out.GuestAccess = strField(byType["m.room.guest_access"], "content.guest_access")
	out.HistoryVisibility = strField(byType["m.room.history_visibility"], "content.history_visibility")
	out.RoomType = strField(byType["m.room.create"], "content.type")
	if c := byType["m.room.create"]; c != nil && gjson.GetBytes(c.JSON, "content.m\\.federate").Type == gjson.False {
		out.Federatable = false
	}
	return out, nil
}

// listRooms handles GET /_synapse/admin/v1/rooms.
func (a *API) listRooms(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	from, err := intParam(r, "from", 0)
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", 100)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	term := strings.ToLower(q.Get("search_term"))
	rooms, err := a.store.ListRooms(r.Context())
	if err != nil {
		return err
	}
	all := []*roomJSON{}
	for _, room := range rooms {
		info, err := a.roomInfo(r.Context(), room)
		if err != nil {
			return err
		}
		if term != "" && !strings.Contains(strings.ToLower(string(info.RoomID)), term) &&
			(info.Name == nil || !strings.Contains(strings.ToLower(*info.Name), term)) &&
			(info.CanonicalAlias == nil || !strings.Contains(strings.ToLower(*info.CanonicalAlias), term)) {
			continue
		}
		all = append(all, info)
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	var less func(i, j int) bool
	switch q.Get("order_by") {
	case "", "name":
		less = func(i, j int) bool { return str(all[i].Name) < str(all[j].Name) }
	case "joined_members", "size":
		less = func(i, j int) bool { return all[i].JoinedMembers > all[j].JoinedMembers }
	case "joined_local_members":
		less = func(i, j int) bool { return all[i].JoinedLocalMembers > all[j].JoinedLocalMembers }
	case "state_events":
		less = func(i, j int) bool { return all[i].StateEvents > all[j].StateEvents }
	case "version":
		less = func(i, j int) bool { return all[i].Version > all[j].Version }
	case "creator":
		less = func(i, j int) bool { return all[i].Creator < all[j].Creator }
	case "canonical_alias":
		less = func(i, j int) bool { return str(all[i].CanonicalAlias) < str(all[j].CanonicalAlias) }
	case "public":
		less = func(i, j int) bool { return all[i].Public && !all[j].Public }
	case "join_rules":
		less = func(i, j int) bool { return str(all[i].JoinRules) < str(all[j].JoinRules) }
	case "history_visibility":
		less = func(i, j int) bool { return str(all[i].HistoryVisibility) < str(all[j].HistoryVisibility) }
	case "encryption":
		less = func(i, j int) bool { return str(all[i].Encryption) < str(all[j].Encryption) }
	case "federatable":
		less = func(i, j int) bool { return all[i].Federatable && !all[j].Federatable }
	case "guest_access":
		less = func(i, j int) bool { return str(all[i].GuestAccess) < str(all[j].GuestAccess) }
	default:
		return httputil.InvalidParam("unknown order_by")
	}
	switch q.Get("dir") {
	case "", "f":
	case "b":
		l := less
		less = func(i, j int) bool { return l(j, i) }
	default:
		return httputil.InvalidParam("dir must be f or b")
	}
	sort.SliceStable(all, less)
	page := all[min(from, len(all)):min(from+limit, len(all))]
	resp := map[string]any{"rooms": page, "offset": from, "total_rooms": len(all)}
	if from+len(page) < len(all) {
		resp["next_batch"] = from + len(page)
	}
	if from > 0 {
		resp["prev_batch"] = max(0, from-limit)
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

func (a *API) roomVar(r *http.Request) (*storage.Room, error) {
	room, err := a.store.GetRoom(r.Context(), id.RoomID(httputil.PathVar(r, "roomID")))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, httputil.NotFound("Room not found")
	}
	return room, err
}

// getRoom handles GET /_synapse/admin/v1/rooms/{roomID}.
func (a *API) getRoom(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	room, err := a.roomVar(r)
	if err != nil {
		return err
	}
	info, err := a.roomInfo(r.Context(), *room)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, info)
}

// roomMembers handles GET /_synapse/admin/v1/rooms/{roomID}/members.
func (a *API) roomMembers(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	room, err := a.roomVar(r)
	if err != nil {
		return err
	}
	ms, err := a.store.RoomMemberships(r.Context(), room.RoomID)
	if err != nil {
		return err
	}
	members := []id.UserID{}
	for _, m := range ms {
		if m.Membership == "join" {
			members = append(members, m.UserID)
		}
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"members": members, "total": len(members)})
}

// roomState handles GET /_synapse/admin/v1/rooms/{roomID}/state.
func (a *API) roomState(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	room, err := a.roomVar(r)
	if err != nil {
		return err
	}
	state, err := a.store.CurrentState(r.Context(), room.RoomID)
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"state": clientEvents(state)})
}

// rawJSON is pre-encoded JSON.
type rawJSON []byte

// MarshalJSON implements json.Marshaler.
func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

func clientEvents(evs []*storage.Event) []rawJSON {
	now := time.Now().UnixMilli()
	out := make([]rawJSON, len(evs))
	for i, ev := range evs {
		out[i] = eventutil.ClientEvent(nil, eventutil.ClientInput{PDU: ev.JSON, EventID: string(ev.EventID), RoomID: string(ev.RoomID), Unsigned: ev.Unsigned, NowMS: now})
	}
	return out
}

// roomMessages handles GET /_synapse/admin/v1/rooms/{roomID}/messages?from=&to=&dir=&limit=:
// the room's events regardless of the admin's membership. Tokens are "t<stream position>".
func (a *API) roomMessages(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	room, err := a.roomVar(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit, err := intParam(r, "limit", 10)
	if err != nil {
		return err
	}
	limit = min(max(limit, 1), 1000)
	backwards := true
	switch q.Get("dir") {
	case "", "b":
	case "f":
		backwards = false
	default:
		return httputil.InvalidParam("dir must be f or b")
	}
	maxPos, err := a.store.MaxStreamPos(r.Context())
	if err != nil {
		return err
	}
	parse := func(name string, def int64) (int64, error) {
		v := q.Get(name)
		if v == "" {
			return def, nil
		}
		n, err := strconv.ParseInt(strings.TrimPrefix(v, "t"), 10, 64)
		if err != nil || n < 0 {
			return 0, httputil.InvalidParam("invalid %s token", name)
		}
		return n, nil
	}
	var lo, hi int64
	if backwards {
		if hi, err = parse("from", maxPos); err != nil {
			return err
		}
		if lo, err = parse("to", 0); err != nil {
			return err
		}
	} else {
		if lo, err = parse("from", 0); err != nil {
			return err
		}
		if hi, err = parse("to", maxPos); err != nil {
			return err
		}
	}
	evs, err := a.store.RoomEvents(r.Context(), room.RoomID, lo, hi, limit, backwards)
	if err != nil {
		return err
	}
	start := lo
	if backwards {
		start = hi
	}
	resp := map[string]any{"chunk": clientEvents(evs), "start": "t" + strconv.FormatInt(start, 10)}
	if len(evs) == limit {
		last := evs[len(evs)-1].StreamPos
		if backwards {
			last--
		}
		resp["end"] = "t" + strconv.FormatInt(last, 10)
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

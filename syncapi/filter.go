package syncapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path"
	"strings"

	"github.com/gorilla/mux"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/storage"
)

func muxVar(r *http.Request, name string) (string, bool) {
	v, ok := mux.Vars(r)[name]
	return v, ok
}

// createFilter handles POST /user/{userId}/filter.
func (in *Inbox) createFilter(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if _, err := checkSelf(r, dev, "create filters"); err != nil {
		return err
	}
	body, err := httputil.ReadBody(r, httputil.MaxBodyBytes)
	if err != nil {
		return err
	}
	var f mautrix.Filter
	if err := httputil.UnmarshalObject(body, &f); err != nil {
		return err
	}
	if err := ValidateFilter(body, &f); err != nil {
		return httputil.BadJSON("invalid filter: %v", err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		return httputil.BadJSON("invalid filter: %v", err)
	}
	fid, err := in.store.CreateFilter(r.Context(), dev.UserID, compact.Bytes())
	if err != nil {
		return err
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]string{"filter_id": fid})
}

// getFilter handles GET /user/{userId}/filter/{filterId}.
func (in *Inbox) getFilter(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if _, err := checkSelf(r, dev, "read filters"); err != nil {
		return err
	}
	f, err := in.store.GetFilter(r.Context(), dev.UserID, httputil.PathVar(r, "filterId"))
	if errors.Is(err, storage.ErrNotFound) {
		return httputil.NotFound("no such filter")
	}
	if err != nil {
		return err
	}
	return httputil.WriteRawJSON(w, http.StatusOK, f)
}

// LoadFilter implements FilterLoader: a stored filter over the defaults, or
// 400 M_INVALID_PARAM when the user has no filter with that ID.
func (in *Inbox) LoadFilter(ctx context.Context, user id.UserID, filterID string) (*mautrix.Filter, error) {
	raw, err := in.store.GetFilter(ctx, user, filterID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, httputil.InvalidParam("no such filter %q", filterID)
	}
	if err != nil {
		return nil, err
	}
	f := mautrix.DefaultFilter()
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, httputil.BadJSON("stored filter is invalid: %v", err)
	}
	return &f, nil
}

// ValidateFilter checks a decoded filter against the spec's Filter schema
// beyond what decoding into mautrix.Filter checks (types of fields).
func ValidateFilter(raw []byte, f *mautrix.Filter) error {
	if f.EventFormat != "" && f.EventFormat != mautrix.EventFormatClient && f.EventFormat != mautrix.EventFormatFederation {
		return errors.New("event_format must be client or federation")
	}
	for _, field := range f.EventFields {
		if field == "" {
			return errors.New("event_fields entries must not be empty")
		}
	}
	parts := map[string]*mautrix.FilterPart{"account_data": f.AccountData, "presence": f.Presence}
	if f.Room != nil {
		for _, rid := range append(append([]id.RoomID{}, f.Room.Rooms...), f.Room.NotRooms...) {
			if !validRoomID(rid) {
				return errors.New("room.rooms and room.not_rooms must hold room IDs")
			}
		}
		parts["room.account_data"] = f.Room.AccountData
		parts["room.ephemeral"] = f.Room.Ephemeral
		parts["room.state"] = f.Room.State
		parts["room.timeline"] = f.Room.Timeline
	}
	for name, p := range parts {
		if p == nil {
			continue
		}
		if p.Limit < 0 {
			return errors.New(name + ".limit must not be negative")
		}
		for _, rid := range append(append([]id.RoomID{}, p.Rooms...), p.NotRooms...) {
			if !validRoomID(rid) {
				return errors.New(name + " rooms must be room IDs")
			}
		}
		for _, u := range append(append([]id.UserID{}, p.Senders...), p.NotSenders...) {
			if !strings.HasPrefix(string(u), "@") {
				return errors.New(name + " senders must be user IDs")
			}
		}
	}
	return nil
}

// globMatch matches an event type against a filter type pattern ('*' is a wildcard).
func globMatch(pattern, typ string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == typ
	}
	// path.Match treats '*' as "any run of characters except '/'", which event
	// types never contain; escape the other metacharacters.
	esc := strings.NewReplacer(`\`, `\\`, `?`, `\?`, `[`, `\[`).Replace(pattern)
	ok, _ := path.Match(esc, typ)
	return ok
}

// matchPart reports whether an event of typ from sender in room passes the
// filter part (nil passes everything). Limits are applied separately.
func matchPart(p *mautrix.FilterPart, typ string, sender id.UserID, room id.RoomID) bool {
	if p == nil {
		return true
	}
	for _, t := range p.NotTypes {
		if globMatch(string(t.Type), typ) {
			return false
		}
	}
	if p.Types != nil {
		ok := false
		for _, t := range p.Types {
			if globMatch(string(t.Type), typ) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if sender != "" {
		if containsUser(p.NotSenders, sender) {
			return false
		}
		if p.Senders != nil && !containsUser(p.Senders, sender) {
			return false
		}
	}
	if room != "" {
		for _, r := range p.NotRooms {
			if r == room {
				return false
			}
		}
		if p.Rooms != nil && !containsRoom(p.Rooms, room) {
			return false
		}
	}
	return true
}

func containsUser(list []id.UserID, u id.UserID) bool {
	for _, x := range list {
		if x == u {
			return true
		}
	}
	return false
}

func containsRoom(list []id.RoomID, r id.RoomID) bool {
	for _, x := range list {
		if x == r {
			return true
		}
	}
	return false
}

// roomAllowed applies the filter's room.rooms / room.not_rooms.
func roomAllowed(f *mautrix.Filter, room id.RoomID) bool {
	if f == nil || f.Room == nil {
		return true
	}
	if containsRoom(f.Room.NotRooms, room) {
		return false
	}
	return f.Room.Rooms == nil || containsRoom(f.Room.Rooms, room)
}

// roomFilterPart returns the named part of the room filter, or nil.
func roomFilterPart(f *mautrix.Filter, name string) *mautrix.FilterPart {
	if f == nil || f.Room == nil {
		return nil
	}
	switch name {
	case "account_data":
		return f.Room.AccountData
	case "ephemeral":
		return f.Room.Ephemeral
	case "state":
		return f.Room.State
	case "timeline":
		return f.Room.Timeline
	}
	return nil
}

// applyLimit keeps the newest limit events when the part has a limit.
func applyLimit(evs []json.RawMessage, p *mautrix.FilterPart) []json.RawMessage {
	if p == nil || p.Limit <= 0 || len(evs) <= p.Limit {
		return evs
	}
	return evs[len(evs)-p.Limit:]
}

// ApplyEventFields keeps only the listed fields of a client event (the
// filter's event_fields: dot-separated paths, '\.' for a literal dot). With
// no fields the event is returned unchanged; an event that is not a JSON
// object is returned unchanged too.
func ApplyEventFields(ev json.RawMessage, fields []string) json.RawMessage {
	if len(fields) == 0 {
		return ev
	}
	var src map[string]any
	dec := json.NewDecoder(bytes.NewReader(ev))
	dec.UseNumber()
	if err := dec.Decode(&src); err != nil {
		return ev
	}
	dst := map[string]any{}
	for _, f := range fields {
		copyField(src, dst, splitField(f))
	}
	out, err := json.Marshal(dst)
	if err != nil {
		return ev
	}
	return out
}

func splitField(f string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(f); i++ {
		switch {
		case f[i] == '\\' && i+1 < len(f) && (f[i+1] == '.' || f[i+1] == '\\'):
			cur.WriteByte(f[i+1])
			i++
		case f[i] == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(f[i])
		}
	}
	return append(parts, cur.String())
}

func copyField(src, dst map[string]any, path []string) {
	v, ok := src[path[0]]
	if !ok {
		return
	}
	if len(path) == 1 {
		dst[path[0]] = v
		return
	}
	sub, ok := v.(map[string]any)
	if !ok {
		return
	}
	d, ok := dst[path[0]].(map[string]any)
	if !ok {
		d = map[string]any{}
		dst[path[0]] = d
	}
	copyField(sub, d, path[1:])
}

package clientapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/eventutil"
	"parley/internal/httputil"
	"parley/roomserver"
	"parley/storage"
)

// roomEventFilter is the RoomEventFilter of /messages and /context.
type roomEventFilter struct {
	Limit       int       `json:"limit"`
	Types       *[]string `json:"types"`
	NotTypes    []string  `json:"not_types"`
	Senders     *[]string `json:"senders"`
	NotSenders  []string  `json:"not_senders"`
	ContainsURL *bool     `json:"contains_url"`
	Rooms       *[]string `json:"rooms"`
	NotRooms    []string  `json:"not_rooms"`
	// LazyLoadMembers adds the member events of the returned events' senders.
	LazyLoadMembers         bool `json:"lazy_load_members"`
	IncludeRedundantMembers bool `json:"include_redundant_members"`
}

// typeMatches matches an event type against a filter pattern, where '*' matches any run of characters.
func typeMatches(pattern, t string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == t
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(t, parts[0]) {
		return false
	}
	t = t[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(t, p)
		}
		j := strings.Index(t, p)
		if j < 0 {
			return false
		}
		t = t[j+len(p):]
	}
	return true
}

func anyMatch(patterns []string, t string) bool {
	for _, p := range patterns {
		if typeMatches(p, t) {
			return true
		}
	}
	return false
}

// keep returns the filter's predicate, or nil when it keeps everything.
func (f *roomEventFilter) keep() func(*storage.Event) bool {
	if f == nil || (f.Types == nil && len(f.NotTypes) == 0 && f.Senders == nil && len(f.NotSenders) == 0 && f.ContainsURL == nil && f.Rooms == nil && len(f.NotRooms) == 0) {
		return nil
	}
	return func(ev *storage.Event) bool {
		if f.Types != nil && !anyMatch(*f.Types, ev.Type) || anyMatch(f.NotTypes, ev.Type) {
			return false
		}
		if f.Senders != nil && !contains(*f.Senders, string(ev.Sender)) || contains(f.NotSenders, string(ev.Sender)) {
			return false
		}
		if f.Rooms != nil && !contains(*f.Rooms, string(ev.RoomID)) || contains(f.NotRooms, string(ev.RoomID)) {
			return false
		}
		if f.ContainsURL != nil {
			has := gjson.GetBytes(ev.JSON, "content.url").Type == gjson.String
			if has != *f.ContainsURL {
				return false
			}
		}
		return true
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func parseEventFilter(r *http.Request) (*roomEventFilter, error) {
	v := r.URL.Query().Get("filter")
	if v == "" {
		return nil, nil
	}
	var f roomEventFilter
	if err := json.Unmarshal([]byte(v), &f); err != nil {
		return nil, httputil.BadJSON("invalid filter: %v", err)
	}
	return &f, nil
}

func parseLimit(r *http.Request, def int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, httputil.InvalidParam("limit must be a non-negative integer")
	}
	return n, nil
}

// getEvent handles GET /rooms/{roomID}/event/{eventID}.
func (a *API) getEvent(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	ev, err := a.rooms.Event(r.Context(), dev.UserID, roomID, id.EventID(httputil.PathVar(r, "eventID")))
	if err != nil {
		return roomError(err)
	}
	evs, err := a.withRelations(r.Context(), dev, []*storage.Event{ev})
	if err != nil {
		return err
	}
	out, err := a.roomEvents(r.Context(), dev, roomID, evs)
	if err != nil {
		return err
	}
	return httputil.WriteRawJSON(w, http.StatusOK, out[0])
}

// messages handles GET /rooms/{roomID}/messages.
func (a *API) messages(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	req := roomserver.MessagesRequest{User: dev.UserID, RoomID: roomID, Backwards: true}
	switch q.Get("dir") {
	case "b", "":
	case "f":
		req.Backwards = false
	default:
		return httputil.InvalidParam("dir must be b or f")
	}
	if v := q.Get("from"); v != "" {
		if req.From, err = parsePos(v); err != nil {
			return httputil.InvalidParam("%v", err)
		}
		req.HasFrom = true
	}
	if v := q.Get("to"); v != "" {
		if req.To, err = parsePos(v); err != nil {
			return httputil.InvalidParam("%v", err)
		}
		req.HasTo = true
	}
	if req.Limit, err = parseLimit(r, 10); err != nil {
		return err
	}
	f, err := parseEventFilter(r)
	if err != nil {
		return err
	}
	if f != nil && f.Limit > 0 && q.Get("limit") == "" {
		req.Limit = f.Limit
	}
	req.Keep = f.keep()
	if req.Limit == 0 {
		req.Limit = 10
	}
	res, err := a.rooms.Messages(r.Context(), req)
	if err != nil {
		return roomError(err)
	}
	chunk, err := a.withRelations(r.Context(), dev, res.Events)
	if err != nil {
		return err
	}
	chunkOut, err := a.roomEvents(r.Context(), dev, roomID, chunk)
	if err != nil {
		return err
	}
	resp := map[string]any{"chunk": chunkOut, "start": formatPos(res.Start)}
	// As Synapse: a page with events always has an end token (the next page may
	// then be empty); an empty page has one only while more events may follow.
	if res.More || len(res.Events) > 0 {
		resp["end"] = formatPos(res.End)
	}
	if f != nil && f.LazyLoadMembers {
		at := res.Start
		if !req.Backwards {
			at = res.End
		}
		members, err := a.rooms.MembersOf(r.Context(), roomID, res.Events, at)
		if err != nil {
			return err
		}
		resp["state"] = clientEvents(dev, members)
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

// eventContext handles GET /rooms/{roomID}/context/{eventID}.
func (a *API) eventContext(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	limit, err := parseLimit(r, 10)
	if err != nil {
		return err
	}
	f, err := parseEventFilter(r)
	if err != nil {
		return err
	}
	res, err := a.rooms.Context(r.Context(), dev.UserID, roomID, id.EventID(httputil.PathVar(r, "eventID")), limit, f.keep())
	if err != nil {
		return roomError(err)
	}
	if f != nil && f.LazyLoadMembers {
		all := append(append(append([]*storage.Event{}, res.Before...), res.Event), res.After...)
		if res.State, err = a.rooms.MembersOf(r.Context(), roomID, all, res.End); err != nil {
			return err
		}
	}
	withRel, err := a.withRelations(r.Context(), dev, append(append([]*storage.Event{res.Event}, res.Before...), res.After...))
	if err != nil {
		return err
	}
	out, err := a.roomEvents(r.Context(), dev, roomID, withRel)
	if err != nil {
		return err
	}
	nb := len(res.Before)
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{
		"start":         formatPos(res.Start),
		"end":           formatPos(res.End),
		"event":         out[0],
		"events_before": out[1 : 1+nb],
		"events_after":  out[1+nb:],
		"state":         clientEvents(dev, res.State),
	})
}

// roomInitialSync handles GET /rooms/{roomID}/initialSync (deprecated).
func (a *API) roomInitialSync(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	roomID, err := roomIDVar(r)
	if err != nil {
		return err
	}
	limit, err := parseLimit(r, 10)
	if err != nil {
		return err
	}
	res, err := a.rooms.InitialSync(r.Context(), dev.UserID, roomID, max(limit, 1))
	if err != nil {
		return roomError(err)
	}
	if limit == 0 {
		res.Messages.Events = nil
	}
	chunk := res.Messages.Events
	slices.Reverse(chunk) // oldest first
	start := res.Messages.Start
	if len(chunk) > 0 {
		start = chunk[0].StreamPos - 1
	}
	visibility := "private"
	if res.IsPublic {
		visibility = "public"
	}
	resp := map[string]any{
		"room_id": roomID,
		"messages": map[string]any{
			"chunk": v1Events(dev, chunk), "start": formatPos(start), "end": formatPos(res.Messages.Start),
		},
		"state":        v1Events(dev, res.State),
		"visibility":   visibility,
		"presence":     []any{},
		"receipts":     []any{},
		"account_data": []any{},
	}
	if res.Membership != "" {
		resp["membership"] = res.Membership
	}
	return httputil.WriteJSON(w, http.StatusOK, resp)
}

// v1Events formats events as the deprecated initialSync did: client events
// that also carry the sender as user_id.
func v1Events(dev *authn.Device, evs []*storage.Event) []rawJSON {
	out := clientEvents(dev, evs)
	for i, ev := range evs {
		b := make([]byte, 0, len(out[i])+len(ev.Sender)+16)
		b = append(b, `{"user_id":`...)
		b = eventutil.AppendString(b, string(ev.Sender))
		b = append(b, ',')
		out[i] = append(b, out[i][1:]...)
	}
	return out
}

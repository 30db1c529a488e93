package searchapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
	"parley/roomserver"
	"parley/storage"
)

// searchRequest is the body of POST /search (client-server API, "Server Side Search").
type searchRequest struct {
	SearchCategories *struct {
		RoomEvents *roomEventsCriteria `json:"room_events"`
	} `json:"search_categories"`
}

type roomEventsCriteria struct {
	SearchTerm   *string          `json:"search_term"`
	Keys         []string         `json:"keys"`
	Filter       *roomEventFilter `json:"filter"`
	OrderBy      string           `json:"order_by"`
	EventContext *struct {
		BeforeLimit    *int `json:"before_limit"`
		AfterLimit     *int `json:"after_limit"`
		IncludeProfile bool `json:"include_profile"`
	} `json:"event_context"`
	IncludeState bool `json:"include_state"`
	Groupings    *struct {
		GroupBy []struct {
			Key string `json:"key"`
		} `json:"group_by"`
	} `json:"groupings"`
}

// roomEventFilter is the RoomEventFilter of the search criteria.
type roomEventFilter struct {
	Limit      *int      `json:"limit"`
	Types      *[]string `json:"types"`
	NotTypes   []string  `json:"not_types"`
	Senders    *[]string `json:"senders"`
	NotSenders []string  `json:"not_senders"`
	Rooms      *[]string `json:"rooms"`
	NotRooms   []string  `json:"not_rooms"`
}

// keyTypes is the event type each searchable key belongs to.
var keyTypes = map[string]string{"content.body": "m.room.message", "content.name": "m.room.name", "content.topic": "m.room.topic"}

func typeMatches(pattern, t string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(t, p)
	}
	return pattern == t
}

func anyType(patterns []string, t string) bool {
	for _, p := range patterns {
		if typeMatches(p, t) {
			return true
		}
	}
	return false
}

type searchResult struct {
	Rank    float64        `json:"rank"`
	Result  rawJSON        `json:"result"`
	Context *resultContext `json:"context,omitempty"`
}

type resultContext struct {
	Start        string                    `json:"start"`
	End          string                    `json:"end"`
	EventsBefore []rawJSON                 `json:"events_before"`
	EventsAfter  []rawJSON                 `json:"events_after"`
	ProfileInfo  map[id.UserID]profileInfo `json:"profile_info,omitempty"`
}

type profileInfo struct {
	DisplayName *string `json:"displayname,omitempty"`
	AvatarURL   *string `json:"avatar_url,omitempty"`
}

type groupValue struct {
	NextBatch *string      `json:"next_batch,omitempty"`
	Order     int          `json:"order"`
	Results   []id.EventID `json:"results"`
}

// search handles POST /search.
func (a *API) search(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	var req searchRequest
	if err := httputil.DecodeJSONObject(r, &req); err != nil {
		return err
	}
	if req.SearchCategories == nil {
		return httputil.BadJSON("search_categories is required")
	}
	crit := req.SearchCategories.RoomEvents
	if crit == nil {
		// No category asked for: nothing to search.
		return httputil.WriteJSON(w, http.StatusOK, map[string]any{"search_categories": map[string]any{}})
	}
	if crit.SearchTerm == nil {
		return httputil.BadJSON("room_events.search_term is required")
	}
	q := storage.SearchQuery{Term: *crit.SearchTerm}
	for _, k := range crit.Keys {
		if _, ok := keyTypes[k]; !ok {
			return httputil.InvalidParam("unknown search key %q", k)
		}
		q.Keys = append(q.Keys, k)
	}
	switch crit.OrderBy {
	case "", "rank":
		q.ByRank = true
	case "recent":
	default:
		return httputil.InvalidParam("order_by must be rank or recent")
	}
	groupByRoom, groupBySender := false, false
	if crit.Groupings != nil {
		for _, g := range crit.Groupings.GroupBy {
			switch g.Key {
			case "room_id":
				groupByRoom = true
			case "sender":
				groupBySender = true
			default:
				return httputil.InvalidParam("unknown grouping key %q", g.Key)
			}
		}
	}
	before, after, withProfile := 0, 0, false
	if ec := crit.EventContext; ec != nil {
		before, after, withProfile = 5, 5, ec.IncludeProfile
		if ec.BeforeLimit != nil {
			before = *ec.BeforeLimit
		}
		if ec.AfterLimit != nil {
			after = *ec.AfterLimit
		}
		if before < 0 || after < 0 {
			return httputil.InvalidParam("event_context limits must not be negative")
		}
		before, after = min(before, 50), min(after, 50)
	}
	limit := 10
	f := crit.Filter
	if f != nil && f.Limit != nil {
		if *f.Limit < 0 {
			return httputil.InvalidParam("filter.limit must not be negative")
		}
		limit = min(*f.Limit, 100)
	}
	offset := 0
	if nb := r.URL.Query().Get("next_batch"); nb != "" {
		n, err := strconv.Atoi(nb)
		if err != nil || n < 0 {
			return httputil.InvalidParam("invalid next_batch")
		}
		offset = n
	}

	// Synapse searches the rooms the user is joined to; the visibility check
	// below then hides events from before the user could see the room.
	ctx := r.Context()
	joined, err := a.rooms.JoinedRooms(ctx, dev.UserID)
	if err != nil {
		return err
	}
	for _, room := range joined {
		if f != nil && (f.Rooms != nil && !containsStr(*f.Rooms, string(room)) || containsStr(f.NotRooms, string(room))) {
			continue
		}
		q.Rooms = append(q.Rooms, room)
	}
	if f != nil {
		if f.Senders != nil {
			q.Senders = make([]id.UserID, 0, len(*f.Senders))
			for _, s := range *f.Senders {
				q.Senders = append(q.Senders, id.UserID(s))
			}
		}
		for _, s := range f.NotSenders {
			q.NotSenders = append(q.NotSenders, id.UserID(s))
		}
	}

	vis := map[id.RoomID]*roomserver.Visibility{}
	var (
		results []*storage.Event
		ranks   []float64
		total   int
		more    bool
	)
	for limit > 0 && len(results) < limit {
		q.Offset, q.Limit = offset, limit*2
		hits, n, err := a.store.SearchEvents(ctx, q)
		if err != nil {
			return err
		}
		total = n
		if len(hits) == 0 {
			more = false
			break
		}
		ids := make([]id.EventID, len(hits))
		for i, h := range hits {
			ids[i] = h.EventID
		}
		evs, err := a.store.GetEvents(ctx, ids)
		if err != nil {
			return err
		}
		byID := make(map[id.EventID]*storage.Event, len(evs))
		for _, ev := range evs {
			byID[ev.EventID] = ev
		}
		for _, h := range hits {
			offset++
			ev := byID[h.EventID]
			if ev == nil || ev.Redacted {
				continue
			}
			if f != nil && (f.Types != nil && !anyType(*f.Types, ev.Type) || anyType(f.NotTypes, ev.Type)) {
				continue
			}
			v := vis[ev.RoomID]
			if v == nil {
				if v, err = a.rooms.NewVisibility(ctx, dev.UserID, ev.RoomID); err != nil {
					return err
				}
				vis[ev.RoomID] = v
			}
			if !v.CanSee(ev) {
				continue
			}
			results = append(results, ev)
			ranks = append(ranks, h.Rank)
			if len(results) == limit {
				break
			}
		}
		more = offset < total
		if !more {
			break
		}
	}

	now := time.Now().UnixMilli()
	out := make([]searchResult, len(results))
	for i, ev := range results {
		out[i] = searchResult{Rank: ranks[i], Result: clientEvent(dev, ev, now)}
		if crit.EventContext != nil {
			c, err := a.eventContext(r, dev, ev, before, after, withProfile)
			if err != nil {
				return err
			}
			out[i].Context = c
		}
	}
	resp := map[string]any{
		"count":      total,
		"highlights": highlights(*crit.SearchTerm),
		"results":    out,
	}
	// As Synapse (and as /messages gives "end"): a full page has a next_batch
	// even when it ends exactly at the last result; the next page is then
	// empty and has none. Only an absent next_batch means "no more".
	var nextBatch *string
	if more || limit > 0 && len(results) == limit {
		nb := strconv.Itoa(offset)
		nextBatch = &nb
		resp["next_batch"] = nb
	}
	if groupByRoom || groupBySender {
		groups := map[string]map[string]*groupValue{}
		add := func(kind, key string, ev *storage.Event) {
			if groups[kind] == nil {
				groups[kind] = map[string]*groupValue{}
			}
			g := groups[kind][key]
			if g == nil {
				g = &groupValue{Order: len(groups[kind]) + 1, Results: []id.EventID{}, NextBatch: nextBatch}
				groups[kind][key] = g
			}
			g.Results = append(g.Results, ev.EventID)
		}
		for _, ev := range results {
			if groupByRoom {
				add("room_id", string(ev.RoomID), ev)
			}
			if groupBySender {
				add("sender", string(ev.Sender), ev)
			}
		}
		resp["groups"] = groups
	}
	if crit.IncludeState {
		state := map[id.RoomID][]rawJSON{}
		for _, ev := range results {
			if _, ok := state[ev.RoomID]; ok {
				continue
			}
			evs, err := a.rooms.RoomState(ctx, dev.UserID, ev.RoomID)
			if err != nil {
				return err
			}
			state[ev.RoomID] = clientEvents(dev, evs)
		}
		resp["state"] = state
	}
	return httputil.WriteJSON(w, http.StatusOK, map[string]any{"search_categories": map[string]any{"room_events": resp}})
}

// eventContext returns the events around a search result that the user may see.
func (a *API) eventContext(r *http.Request, dev *authn.Device, ev *storage.Event, before, after int, withProfile bool) (*resultContext, error) {
	ctx := r.Context()
	c := &resultContext{Start: "t" + strconv.FormatInt(ev.StreamPos-1, 10), End: "t" + strconv.FormatInt(ev.StreamPos, 10),
		EventsBefore: []rawJSON{}, EventsAfter: []rawJSON{}}
	var senders []*storage.Event
	if before > 0 {
		b, err := a.rooms.Messages(ctx, roomserver.MessagesRequest{User: dev.UserID, RoomID: ev.RoomID, From: ev.StreamPos - 1, HasFrom: true, Backwards: true, Limit: before})
		if err != nil {
			return nil, err
		}
		c.EventsBefore = clientEvents(dev, b.Events)
		c.Start = "t" + strconv.FormatInt(b.End, 10)
		senders = append(senders, b.Events...)
	}
	if after > 0 {
		af, err := a.rooms.Messages(ctx, roomserver.MessagesRequest{User: dev.UserID, RoomID: ev.RoomID, From: ev.StreamPos, HasFrom: true, Limit: after})
		if err != nil {
			return nil, err
		}
		c.EventsAfter = clientEvents(dev, af.Events)
		c.End = "t" + strconv.FormatInt(af.End, 10)
		senders = append(senders, af.Events...)
	}
	if withProfile {
		c.ProfileInfo = map[id.UserID]profileInfo{}
		members, err := a.rooms.MembersOf(ctx, ev.RoomID, append(senders, ev), ev.StreamPos)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		for _, m := range members {
			if m.StateKey == nil {
				continue
			}
			var p profileInfo
			if v := gjson.GetBytes(m.JSON, "content.displayname"); v.Type == gjson.String {
				p.DisplayName = &v.Str
			}
			if v := gjson.GetBytes(m.JSON, "content.avatar_url"); v.Type == gjson.String {
				p.AvatarURL = &v.Str
			}
			c.ProfileInfo[id.UserID(*m.StateKey)] = p
		}
	}
	return c, nil
}

// highlights are the words of the search term, which clients highlight in results.
func highlights(term string) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, w := range strings.Fields(term) {
		w = strings.Trim(strings.ToLower(w), `"'-+()`)
		if w != "" && !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

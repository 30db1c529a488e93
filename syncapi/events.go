package syncapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/eventutil"
	"parley/internal/httputil"
)

// eventsFilter reads whole timelines: /events has no filter and no gaps.
const eventsFilter = `{"room":{"timeline":{"limit":100}}}`

// events handles the deprecated GET /events (spec: "old_sync"): a /sync
// from the token in from, flattened into one chunk of events, each with its
// room_id. Without from it answers at once with the current token and no
// events, where a client starts streaming.
func (s *Server) events(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	ctx := r.Context()
	q := r.URL.Query()
	timeout, err := longPollTimeout(q)
	if err != nil {
		return err
	}
	if v := q.Get("limit"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 0 {
			return httputil.InvalidParam("limit must be a non-negative integer")
		}
	}
	filter, err := s.loadFilter(ctx, dev.UserID, eventsFilter)
	if err != nil {
		return err
	}
	out := struct {
		Start string            `json:"start"`
		End   string            `json:"end"`
		Chunk []json.RawMessage `json:"chunk"`
	}{Chunk: []json.RawMessage{}}
	from := q.Get("from")
	if from == "" {
		tok, err := s.current(ctx)
		if err != nil {
			return err
		}
		out.Start, out.End = tok.String(), tok.String()
		return httputil.WriteJSON(w, http.StatusOK, out)
	}
	since, err := ParseToken(from)
	if err != nil {
		return httputil.Errorf(http.StatusBadRequest, httputil.CodeInvalidParam, "bad from token: %v", err)
	}
	req := &Request{Device: dev, Since: since, Filter: filter, SetPresence: "online"}
	resp, err := s.longPoll(ctx, req, timeout)
	if err != nil {
		return err
	}
	out.Start, out.End, out.Chunk = from, resp.NextBatch, flatten(resp)
	return httputil.WriteJSON(w, http.StatusOK, out)
}

// flatten lists a sync response's events as /events does: room events
// (joined, invited and left rooms, in room order) with their room_id, the
// rooms' ephemeral events given a room_id, then presence.
func flatten(resp *Response) []json.RawMessage {
	out := []json.RawMessage{}
	if resp.Rooms != nil {
		for _, room := range sortedRooms(resp.Rooms.Join) {
			jr := resp.Rooms.Join[room]
			out = append(out, jr.Timeline.Events...)
			for _, ev := range jr.Ephemeral.Events {
				out = append(out, withRoomID(ev, room))
			}
		}
		for _, room := range sortedRooms(resp.Rooms.Invite) {
			for _, ev := range resp.Rooms.Invite[room].InviteState.Events {
				if eventutil.HasEventID(ev) { // the invite itself, not the stripped state
					out = append(out, ev)
				}
			}
		}
		for _, room := range sortedRooms(resp.Rooms.Leave) {
			out = append(out, resp.Rooms.Leave[room].Timeline.Events...)
		}
	}
	if resp.Presence != nil {
		out = append(out, resp.Presence.Events...)
	}
	return out
}

func sortedRooms[T any](m map[id.RoomID]T) []id.RoomID {
	rooms := make([]id.RoomID, 0, len(m))
	for r := range m {
		rooms = append(rooms, r)
	}
	slices.Sort(rooms)
	return rooms
}

// withRoomID adds room_id to an event object that has none.
func withRoomID(ev json.RawMessage, room id.RoomID) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(ev, &m) != nil {
		return ev
	}
	if _, ok := m["room_id"]; !ok {
		m["room_id"], _ = json.Marshal(room)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return ev
	}
	return b
}

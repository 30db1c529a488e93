package syncapi

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/internal/authn"
	"parley/internal/httputil"
)

// maxTypingTimeout bounds how long one typing notification lasts.
const maxTypingTimeout = 2 * time.Minute

// defaultTypingTimeout applies when the client sends typing without a timeout.
const defaultTypingTimeout = 30 * time.Second

// typingState is the in-memory set of typing users per room. Positions are
// in memory: after a restart they start again at 0, and /sync then sends the
// current state to clients whose token is ahead.
type typingState struct {
	in *Inbox
	// mu guards pos, rooms and roomPos.
	mu      sync.Mutex
	pos     int64
	rooms   map[id.RoomID]map[id.UserID]*time.Timer
	roomPos map[id.RoomID]int64
}

func newTypingState(in *Inbox) *typingState {
	return &typingState{in: in, rooms: map[id.RoomID]map[id.UserID]*time.Timer{}, roomPos: map[id.RoomID]int64{}}
}

// set starts (typing) or stops a user's typing in room and reports whether
// the room's typing set changed. notify: this process received the change
// (not another process through LinkTyping), so it, and only it, tells the
// application services, also when the typing times out.
func (t *typingState) set(room id.RoomID, user id.UserID, typing bool, timeout time.Duration, notify bool) bool {
	t.mu.Lock()
	users := t.rooms[room]
	old, was := users[user]
	if was {
		old.Stop()
	}
	changed := typing != was
	if typing {
		if users == nil {
			users = map[id.UserID]*time.Timer{}
			t.rooms[room] = users
		}
		users[user] = time.AfterFunc(timeout, func() { t.expire(room, user, notify) })
	} else if was {
		delete(users, user)
		if len(users) == 0 {
			delete(t.rooms, room)
		}
	}
	if changed {
		t.pos++
		t.roomPos[room] = t.pos
	}
	t.mu.Unlock()
	if changed {
		t.in.wakeRoomMembers(context.Background(), room)
	}
	return changed
}

// expire ends a typing notification whose timeout passed (notify: as set's).
func (t *typingState) expire(room id.RoomID, user id.UserID, notify bool) {
	t.mu.Lock()
	users := t.rooms[room]
	if _, ok := users[user]; !ok {
		t.mu.Unlock()
		return
	}
	delete(users, user)
	if len(users) == 0 {
		delete(t.rooms, room)
	}
	t.pos++
	t.roomPos[room] = t.pos
	t.mu.Unlock()
	t.in.wakeRoomMembers(context.Background(), room)
	if notify {
		t.in.typingToAppServices(room)
	}
}

// close stops every timer.
func (t *typingState) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, users := range t.rooms {
		for _, tm := range users {
			tm.Stop()
		}
	}
	t.rooms = map[id.RoomID]map[id.UserID]*time.Timer{}
}

// snapshot returns the typing users of room if its typing set changed in
// (from, to]; with initial set (a room new to a sliding-sync list) it returns
// them whenever someone is typing, and nothing otherwise. A
// position of 0 is a real position for an incremental sync (nobody had typed
// yet when its token was issued), so a stop after it is still sent.
func (t *typingState) snapshot(room id.RoomID, initial bool, from, to int64) ([]id.UserID, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.roomPos[room]
	if !initial && (p <= from || p > to) {
		return nil, false
	}
	if initial && len(t.rooms[room]) == 0 {
		return nil, false
	}
	users := make([]id.UserID, 0, len(t.rooms[room]))
	for u := range t.rooms[room] {
		users = append(users, u)
	}
	sort.Slice(users, func(i, j int) bool { return users[i] < users[j] })
	return users, true
}

// putTyping handles PUT /rooms/{roomId}/typing/{userId}.
func (in *Inbox) putTyping(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if _, err := checkSelf(r, dev, "set typing"); err != nil {
		return err
	}
	room := id.RoomID(httputil.PathVar(r, "roomId"))
	var body struct {
		Typing  *bool  `json:"typing"`
		Timeout *int64 `json:"timeout"`
	}
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return err
	}
	if body.Typing == nil {
		return httputil.BadJSON("typing is required")
	}
	if body.Timeout != nil && *body.Timeout < 0 {
		return httputil.BadJSON("timeout must not be negative")
	}
	joined, err := in.rooms.IsJoined(r.Context(), room, dev.UserID)
	if err != nil {
		return err
	}
	if !joined {
		return httputil.Forbidden("you are not joined to %s", room)
	}
	timeout := defaultTypingTimeout
	if body.Timeout != nil {
		timeout = min(time.Duration(*body.Timeout)*time.Millisecond, maxTypingTimeout)
	}
	in.setTyping(room, dev.UserID, *body.Typing, timeout)
	in.sendTypingEDU(room, dev.UserID, *body.Typing, timeout)
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// typingStream puts m.typing into rooms.join[room].ephemeral.
type typingStream struct{ in *Inbox }

// Name implements Stream.
func (s *typingStream) Name() StreamName { return StreamTyping }

// Position implements Stream.
func (s *typingStream) Position(context.Context) (int64, error) {
	s.in.typing.mu.Lock()
	defer s.in.typing.mu.Unlock()
	return s.in.typing.pos, nil
}

// Fill implements Stream.
func (s *typingStream) Fill(ctx context.Context, req *Request, from, to int64, resp *Response) (bool, error) {
	_, rooms, err := s.in.joinedIn(ctx, req.Device.UserID, resp)
	if err != nil {
		return false, err
	}
	part := roomFilterPart(req.Filter, "ephemeral")
	found := false
	for _, room := range rooms {
		if !roomAllowed(req.Filter, room) || !matchPart(part, "m.typing", "", room) {
			continue
		}
		// An initial sync (from 0) gets the room's typing set whenever it
		// changed since the server started, even when it is now empty: a
		// client that restarts from scratch learns that a typist stopped.
		users, changed := s.in.typing.snapshot(room, false, from, to)
		if !changed {
			continue
		}
		ev, _ := json.Marshal(map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": users}})
		jr := resp.JoinedRoom(room)
		jr.Ephemeral.Events = append(jr.Ephemeral.Events, ev)
		found = true
	}
	return found, nil
}

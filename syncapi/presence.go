package syncapi

import (
	"bytes"
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

// Presence states.
const (
	presenceOnline      = "online"
	presenceUnavailable = "unavailable"
	presenceOffline     = "offline"
)

type presenceInfo struct {
	presence  string
	statusMsg *string
	// lastActive is the last user action (presence PUT, receipt, typing).
	lastActive time.Time
	// lastSeen is when the user last synced or set presence.
	lastSeen time.Time
	// syncing counts the user's /sync requests in progress.
	syncing int
	// idle is set when the user became unavailable by the idle timer.
	idle bool
	// remote is set for users of other servers (m.presence EDUs): their
	// server decides their presence; only remotePresenceTimeout applies here.
	remote bool
	pos    int64
}

// remotePresenceTimeout turns a remote user offline when their server sent
// nothing about them for this long (servers refresh online users' presence
// more often than that).
const remotePresenceTimeout = 30 * time.Minute

// presenceState is the in-memory presence of local users, with an in-memory
// stream position. It implements SyncObserver: set_presence on /sync marks
// the user online or unavailable, and the idle timers turn online users
// unavailable and then offline.
type presenceState struct {
	in *Inbox
	// mu guards pos and users.
	mu    sync.Mutex
	pos   int64
	users map[id.UserID]*presenceInfo
}

func newPresenceState(in *Inbox) *presenceState {
	return &presenceState{in: in, users: map[id.UserID]*presenceInfo{}}
}

func (p *presenceState) enabled() bool { return p.in.cfg.Sync.Presence }

// _info returns the user's entry, creating it offline. mu must be held.
func (p *presenceState) _info(user id.UserID) *presenceInfo {
	info := p.users[user]
	if info == nil {
		info = &presenceInfo{presence: presenceOffline}
		p.users[user] = info
	}
	return info
}

// _set changes presence and bumps the position. mu must be held.
func (p *presenceState) _set(info *presenceInfo, presence string) {
	info.presence = presence
	p.pos++
	info.pos = p.pos
}

// SyncStarted implements SyncObserver.
func (p *presenceState) SyncStarted(dev *authn.Device, setPresence string) {
	if !p.enabled() {
		return
	}
	now := time.Now()
	p.mu.Lock()
	info := p._info(dev.UserID)
	info.syncing++
	info.lastSeen = now
	changed := false
	switch setPresence {
	case presenceOnline:
		if info.presence == presenceOffline {
			info.lastActive, info.idle = now, false
			p._set(info, presenceOnline)
			changed = true
		}
	case presenceUnavailable:
		if info.presence != presenceUnavailable {
			p._set(info, presenceUnavailable)
			changed = true
		}
	}
	p.mu.Unlock()
	if changed {
		p.wake(dev.UserID)
	}
}

// SyncEnded implements SyncObserver.
func (p *presenceState) SyncEnded(dev *authn.Device) {
	if !p.enabled() {
		return
	}
	p.mu.Lock()
	info := p._info(dev.UserID)
	info.syncing--
	info.lastSeen = time.Now()
	p.mu.Unlock()
}

// active records a user action; an idle user becomes online again.
func (p *presenceState) active(user id.UserID) {
	if !p.enabled() {
		return
	}
	p.mu.Lock()
	info := p._info(user)
	info.lastActive = time.Now()
	changed := false
	if info.idle && info.presence == presenceUnavailable {
		info.idle = false
		p._set(info, presenceOnline)
		changed = true
	}
	p.mu.Unlock()
	if changed {
		p.wake(user)
	}
}

// put sets presence explicitly (PUT /presence/{userId}/status).
func (p *presenceState) put(user id.UserID, presence string, statusMsg *string) {
	now := time.Now()
	p.mu.Lock()
	info := p._info(user)
	info.statusMsg = statusMsg
	info.lastActive, info.lastSeen, info.idle = now, now, false
	p._set(info, presence)
	p.mu.Unlock()
	if p.enabled() {
		p.wake(user)
	}
}

// wake wakes user and everyone sharing a room with them and, for a local
// user, sends the new presence to the other servers in those rooms.
func (p *presenceState) wake(user id.UserID) {
	ctx := context.Background()
	p.in.notifier.WakeUsers(user)
	rooms, err := p.in.rooms.JoinedRooms(ctx, user)
	if err != nil {
		return
	}
	p.presenceToAppServices(user, rooms)
	local := user.Homeserver() == p.in.cfg.ServerName
	servers := map[string]bool{}
	for _, r := range rooms {
		members, err := p.in.rooms.JoinedMembers(ctx, r)
		if err != nil {
			continue
		}
		p.in.notifier.WakeUsers(members...)
		if local {
			for _, m := range members {
				servers[m.Homeserver()] = true
			}
		}
	}
	delete(servers, p.in.cfg.ServerName)
	if len(servers) == 0 || p.in.eduSink == nil {
		return
	}
	c, _, ok := p.content(user, time.Now())
	if !ok {
		return
	}
	c["user_id"] = user
	dests := make([]string, 0, len(servers))
	for s := range servers {
		dests = append(dests, s)
	}
	p.in.eduSink.SendEDU(dests, "m.presence", map[string]any{"push": []any{c}})
}

// setRemote applies a remote user's presence from an m.presence EDU.
func (p *presenceState) setRemote(user id.UserID, presence string, statusMsg *string, lastActiveAgo int64) {
	if !p.enabled() {
		return
	}
	now := time.Now()
	p.mu.Lock()
	info := p._info(user)
	info.remote = true
	info.lastSeen = now
	info.lastActive = now.Add(-time.Duration(max(lastActiveAgo, 0)) * time.Millisecond)
	info.statusMsg = statusMsg
	p._set(info, presence)
	p.mu.Unlock()
	p.wake(user)
}

// run applies the idle and offline timeouts until ctx ends.
func (p *presenceState) run(ctx context.Context) {
	if !p.enabled() {
		return
	}
	idle, offline := p.in.cfg.Sync.PresenceIdleTimeout, p.in.cfg.Sync.PresenceOfflineTimeout
	tick := max(min(idle, offline)/4, 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			var changed []id.UserID
			p.mu.Lock()
			for user, info := range p.users {
				if info.remote {
					if info.presence != presenceOffline && now.Sub(info.lastSeen) > remotePresenceTimeout {
						p._set(info, presenceOffline)
						changed = append(changed, user)
					}
					continue
				}
				switch {
				case info.presence != presenceOffline && info.syncing == 0 && now.Sub(info.lastSeen) > offline:
					p._set(info, presenceOffline)
					changed = append(changed, user)
				case info.presence == presenceOnline && now.Sub(info.lastActive) > idle:
					info.idle = true
					p._set(info, presenceUnavailable)
					changed = append(changed, user)
				}
			}
			p.mu.Unlock()
			for _, u := range changed {
				p.wake(u)
			}
		}
	}
}

// content returns the m.presence content of user, and its position.
func (p *presenceState) content(user id.UserID, now time.Time) (map[string]any, int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	info, ok := p.users[user]
	if !ok {
		return nil, 0, false
	}
	c := map[string]any{"presence": info.presence}
	if !info.lastActive.IsZero() {
		c["last_active_ago"] = now.Sub(info.lastActive).Milliseconds()
	}
	if info.statusMsg != nil {
		c["status_msg"] = *info.statusMsg
	}
	if info.presence == presenceOnline {
		c["currently_active"] = now.Sub(info.lastActive) < time.Minute
	}
	return c, info.pos, true
}

// getPresence handles GET /presence/{userId}/status.
func (in *Inbox) getPresence(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	user := id.UserID(httputil.PathVar(r, "userId"))
	if _, _, err := user.Parse(); err != nil {
		return httputil.InvalidParam("%q is not a valid user ID", user)
	}
	if user != dev.UserID {
		// As Synapse: presence is visible to users sharing a room.
		mine, _, err := in.joinedSet(r.Context(), dev.UserID)
		if err != nil {
			return err
		}
		shared, err := in.sharesRoom(r.Context(), user, mine)
		if err != nil {
			return err
		}
		if !shared {
			return httputil.Forbidden("you do not share a room with %s", user)
		}
	}
	c, _, ok := in.presence.content(user, time.Now())
	if !ok {
		if !in.isLocal(user) {
			return httputil.NotFound("no presence for %s", user)
		}
		c = map[string]any{"presence": presenceOffline}
	}
	return httputil.WriteJSON(w, http.StatusOK, c)
}

// putPresence handles PUT /presence/{userId}/status.
func (in *Inbox) putPresence(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
	if _, err := checkSelf(r, dev, "set presence"); err != nil {
		return err
	}
	var body struct {
		Presence  *string `json:"presence"`
		StatusMsg *string `json:"status_msg"`
	}
	if err := httputil.DecodeJSONObject(r, &body); err != nil {
		return err
	}
	if body.Presence == nil {
		return httputil.BadJSON("presence is required")
	}
	switch *body.Presence {
	case presenceOnline, presenceUnavailable, presenceOffline:
	default:
		return httputil.BadJSON("presence must be online, unavailable or offline")
	}
	in.presence.put(dev.UserID, *body.Presence, body.StatusMsg)
	return httputil.WriteJSON(w, http.StatusOK, httputil.Empty)
}

// presenceStream delivers m.presence for the user and users sharing a room.
type presenceStream struct{ in *Inbox }

// Name implements Stream.
func (s *presenceStream) Name() StreamName { return StreamPresence }

// Position implements Stream.
func (s *presenceStream) Position(context.Context) (int64, error) {
	if !s.in.presence.enabled() {
		return 0, nil
	}
	s.in.presence.mu.Lock()
	defer s.in.presence.mu.Unlock()
	return s.in.presence.pos, nil
}

// Fill implements Stream.
func (s *presenceStream) Fill(ctx context.Context, req *Request, from, to int64, resp *Response) (bool, error) {
	if !s.in.presence.enabled() {
		return false, nil
	}
	me := req.Device.UserID
	// Changed users first (in memory), then visibility only for them.
	type entry struct {
		pos  int64
		user id.UserID
		c    map[string]any
	}
	var changed []entry
	now := time.Now()
	s.in.presence.mu.Lock()
	users := make([]id.UserID, 0, len(s.in.presence.users))
	for u, info := range s.in.presence.users {
		if info.pos > from && info.pos <= to {
			users = append(users, u)
		}
	}
	s.in.presence.mu.Unlock()
	if len(users) == 0 {
		return false, nil
	}
	var mine map[id.RoomID]struct{}
	for _, u := range users {
		if !matchPart(req.Filter.Presence, "m.presence", u, "") {
			continue
		}
		if u != me {
			if mine == nil {
				var err error
				if mine, _, err = s.in.joinedIn(ctx, me, resp); err != nil {
					return false, err
				}
			}
			shared, err := s.in.sharesRoom(ctx, u, mine)
			if err != nil {
				return false, err
			}
			if !shared {
				continue
			}
		}
		c, pos, ok := s.in.presence.content(u, now)
		if ok && pos > from && pos <= to {
			changed = append(changed, entry{pos, u, c})
		}
	}
	sort.Slice(changed, func(i, j int) bool { return changed[i].pos < changed[j].pos })
	evs := make([]json.RawMessage, 0, len(changed))
	for _, e := range changed {
		ev, _ := json.Marshal(map[string]any{"type": "m.presence", "sender": e.user, "content": e.c})
		evs = append(evs, ev)
	}
	evs = applyLimit(evs, req.Filter.Presence)
	resp.Presence.Events = append(resp.Presence.Events, evs...)
	return len(evs) > 0, nil
}

// sharesRoom reports whether user is joined to one of rooms.
func (in *Inbox) sharesRoom(ctx context.Context, user id.UserID, rooms map[id.RoomID]struct{}) (bool, error) {
	theirs, err := in.rooms.JoinedRooms(ctx, user)
	if err != nil {
		return false, err
	}
	for _, r := range theirs {
		if _, ok := rooms[r]; ok {
			return true, nil
		}
	}
	return false, nil
}

// Finish implements Finisher: an incremental sync in which the user joined a
// room carries the presence of the room's members, and one in which others
// joined the user's rooms carries theirs, whether or not it changed since the
// token (the client has never seen it). Joins are found in the response's
// room events, which the PDU stream has filled.
func (s *presenceStream) Finish(ctx context.Context, req *Request, resp *Response) error {
	if !s.in.presence.enabled() || req.Initial() || len(resp.Rooms.Join) == 0 {
		return nil
	}
	me := req.Device.UserID
	want := map[id.UserID]struct{}{}
	for room, jr := range resp.Rooms.Join {
		for _, list := range [][]json.RawMessage{jr.State.Events, jr.Timeline.Events} {
			for _, raw := range list {
				if !bytes.Contains(raw, []byte(`"m.room.member"`)) {
					continue
				}
				var ev struct {
					Type     string  `json:"type"`
					StateKey *string `json:"state_key"`
					Content  struct {
						Membership string `json:"membership"`
					} `json:"content"`
				}
				if json.Unmarshal(raw, &ev) != nil || ev.Type != "m.room.member" || ev.StateKey == nil || ev.Content.Membership != "join" {
					continue
				}
				if id.UserID(*ev.StateKey) != me {
					want[id.UserID(*ev.StateKey)] = struct{}{}
					continue
				}
				members, err := s.in.rooms.JoinedMembers(ctx, room)
				if err != nil {
					return err
				}
				for _, m := range members {
					want[m] = struct{}{}
				}
			}
		}
	}
	delete(want, me)
	if len(want) == 0 {
		return nil
	}
	have := map[id.UserID]bool{}
	for _, raw := range resp.Presence.Events {
		var ev struct {
			Sender id.UserID `json:"sender"`
		}
		if json.Unmarshal(raw, &ev) == nil {
			have[ev.Sender] = true
		}
	}
	now := time.Now()
	users := make([]id.UserID, 0, len(want))
	for u := range want {
		users = append(users, u)
	}
	sort.Slice(users, func(i, j int) bool { return users[i] < users[j] })
	for _, u := range users {
		if have[u] || !matchPart(req.Filter.Presence, "m.presence", u, "") {
			continue
		}
		c, _, ok := s.in.presence.content(u, now)
		if !ok {
			continue
		}
		ev, _ := json.Marshal(map[string]any{"type": "m.presence", "sender": u, "content": c})
		resp.Presence.Events = append(resp.Presence.Events, ev)
	}
	return nil
}

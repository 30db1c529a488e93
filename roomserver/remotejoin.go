package roomserver

import (
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"parley/internal/authrules"
	"parley/internal/eventutil"
	"parley/internal/logging"
	"parley/storage"
)

// MakeMembership builds the event template of make_join, make_leave or
// make_knock: an unsigned m.room.member event of userID on top of the
// room's current state, checked against the auth rules. versions are the
// room versions the remote server supports (nil: any).
func (s *Server) MakeMembership(ctx context.Context, roomID id.RoomID, userID id.UserID, m event.Membership, versions []id.RoomVersion) (jsontext.Value, id.RoomVersion, error) {
	r, err := s.lockRoom(ctx, roomID)
	if err != nil {
		return nil, "", err
	}
	defer r.mu.Unlock()
	if _, ok := r.state[storage.StateKeyTuple{Type: event.StateCreate.Type}]; !ok {
		return nil, "", ErrNotResident
	}
	if m != event.MembershipLeave && !s.localMemberJoined(r) {
		// Without a joined local member this server is not resident: it
		// cannot vouch for the room's current state to a joining server. (A
		// leave, rejecting an invite, is still served.)
		return nil, "", ErrNotResident
	}
	if versions != nil && !slices.Contains(versions, r.version) {
		return nil, r.version, ErrIncompatibleVersion
	}
	sk := string(userID)
	content := jsontext.Value(`{"membership":"` + string(m) + `"}`)
	if m == event.MembershipJoin {
		// A restricted room: one of our members vouches for the joiner (and
		// this server countersigns the join in send_join).
		authoriser, err := s.restrictedJoinAuthoriser(ctx, roomID, userID)
		if err != nil {
			return nil, r.version, err
		}
		if authoriser != "" {
			content = jsontext.Value(`{"membership":"join","join_authorised_via_users_server":` + strconv.Quote(string(authoriser)) + `}`)
		}
	}
	p := &pdu.PDU{
		RoomID: roomID, Sender: userID, Type: event.StateMember.Type, StateKey: &sk,
		Content: content, OriginServerTS: nowMS(),
		PrevEvents: slices.Clone(r.extremities), Depth: r.depth + 1, AuthEvents: []id.EventID{},
	}
	for _, k := range p.AuthEventSelection(r.version) {
		if e, ok := r.state[storage.StateKeyTuple{Type: k.Type, StateKey: k.StateKey}]; ok {
			p.AuthEvents = append(p.AuthEvents, e.id)
		}
	}
	check := p
	if gjson.GetBytes(p.Content, "join_authorised_via_users_server").Exists() {
		// The auth rules want this server's signature on a join it
		// authorises; the joiner's server signs first, send_join adds ours.
		signed := *p
		if err := signed.Sign(r.version, s.serverName, s.key.ID, s.key.Priv); err != nil {
			return nil, r.version, err
		}
		check = &signed
	}
	if err := s.authorizeAgainst(r.version, check, r.lookup); err != nil {
		return nil, r.version, fmt.Errorf("%w: %v", ErrForbidden, err)
	}
	if isV1(r.version) {
		refs := map[id.EventID][]byte{}
		maps.Copy(refs, r.refs)
		for _, e := range r.state {
			if slices.Contains(p.AuthEvents, e.id) {
				refs[e.id] = e.ref
			}
		}
		tmpl, err := v1Template(p, refs)
		return tmpl, r.version, err
	}
	tmpl, err := json.Marshal(p)
	return tmpl, r.version, err
}

// localMemberJoined reports whether a user of this server is joined to the room. r must be locked.
func (s *Server) localMemberJoined(r *room) bool {
	for k, e := range r.state {
		if k.Type == event.StateMember.Type && id.UserID(k.StateKey).Homeserver() == s.serverName &&
			gjson.GetBytes(e.pdu.Content, "membership").Str == string(event.MembershipJoin) {
			return true
		}
	}
	return false
}

func (r *room) lookup(t, k string) *pdu.PDU {
	if e, ok := r.state[storage.StateKeyTuple{Type: t, StateKey: k}]; ok {
		return e.pdu
	}
	return nil
}

// SendMembership accepts a signed membership event from origin (send_join,
// send_leave, send_knock), persists it and, for joins, returns the state
// before it and that state's auth chain.
func (s *Server) SendMembership(ctx context.Context, origin string, roomID id.RoomID, eventID id.EventID, raw []byte, m event.Membership) (state, authChain []jsontext.Value, ev []byte, err error) {
	info, err := s.store.GetRoom(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, nil, ErrRoomNotFound
	} else if err != nil {
		return nil, nil, nil, err
	}
	re, err := s.parseRemote(info.Version, raw)
	if err != nil {
		return nil, nil, nil, err
	}
	p := re.p
	switch {
	case re.id != eventID:
		return nil, nil, nil, fmt.Errorf("%w: event ID is %s, not %s", ErrBadRequest, re.id, eventID)
	case p.RoomID != roomID:
		return nil, nil, nil, fmt.Errorf("%w: event is for another room", ErrBadRequest)
	case p.Type != event.StateMember.Type || p.StateKey == nil || *p.StateKey != string(p.Sender):
		return nil, nil, nil, fmt.Errorf("%w: not a membership event of its sender", ErrBadRequest)
	case gjson.GetBytes(p.Content, "membership").Str != string(m):
		return nil, nil, nil, fmt.Errorf("%w: membership is not %s", ErrBadRequest, m)
	case p.Sender.Homeserver() != origin:
		return nil, nil, nil, fmt.Errorf("%w: sender is not from %s", ErrForbidden, origin)
	}
	if authoriser := id.UserID(gjson.GetBytes(p.Content, "join_authorised_via_users_server").Str); m == event.MembershipJoin && authoriser != "" && authoriser.Homeserver() == s.serverName {
		// Our member vouched for this restricted join (make_join): the auth
		// rules want the join signed by this server too.
		if err := p.Sign(info.Version, s.serverName, s.key.ID, s.key.Priv); err != nil {
			return nil, nil, nil, err
		}
		if re.json, err = json.Marshal(p); err != nil {
			return nil, nil, nil, err
		}
	}
	r, err := s.lockRoom(ctx, roomID)
	if err != nil {
		return nil, nil, nil, err
	}
	defer r.mu.Unlock()
	var stateIDs []id.EventID
	for _, e := range r.state {
		stateIDs = append(stateIDs, e.id)
	}
	if err := s.inputLocked(ctx, r, origin, re, maxMissingDepth); err != nil {
		return nil, nil, nil, err
	}
	if stored, err := s.store.GetEvent(ctx, re.id); err != nil || stored.SoftFailed || stored.Rejected {
		return nil, nil, nil, fmt.Errorf("%w: membership not allowed by the current state", ErrForbidden)
	}
	if m != event.MembershipJoin {
		return nil, nil, re.json, nil
	}
	state, err = s.eventsJSON(ctx, stateIDs)
	if err != nil {
		return nil, nil, nil, err
	}
	chain, err := s.AuthChain(ctx, stateIDs)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, e := range chain {
		authChain = append(authChain, jsontext.Value(e.JSON))
	}
	return state, authChain, re.json, nil
}

func (s *Server) eventsJSON(ctx context.Context, ids []id.EventID) ([]jsontext.Value, error) {
	evs, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]jsontext.Value, 0, len(evs))
	for _, e := range evs {
		out = append(out, jsontext.Value(e.JSON))
	}
	return out, nil
}

// AuthChain returns the auth chain of the given events: every event reachable
// from them through auth_events (the events themselves only when reached).
func (s *Server) AuthChain(ctx context.Context, ids []id.EventID) ([]*storage.Event, error) {
	seen := map[id.EventID]bool{}
	var out []*storage.Event
	frontier := slices.Clone(ids)
	first := true
	for len(frontier) > 0 {
		evs, err := s.store.GetEvents(ctx, frontier)
		if err != nil {
			return nil, err
		}
		frontier = nil
		for _, e := range evs {
			if !first {
				out = append(out, e)
			}
			for _, a := range refIDs(gjson.GetBytes(e.JSON, "auth_events")) {
				if !seen[a] {
					seen[a] = true
					frontier = append(frontier, a)
				}
			}
		}
		first = false
	}
	return out, nil
}

// joinVia lists the servers to try for joining a room this server is not in.
func (s *Server) joinVia(ctx context.Context, req MembershipRequest) []string {
	via := slices.Clone(req.Via)
	if inv, err := s.store.CurrentStateEvent(ctx, req.RoomID, event.StateMember.Type, string(req.Sender)); err == nil && inv.Membership == "invite" {
		via = append(via, inv.Sender.Homeserver())
	}
	if _, _, server := id.ParseCommonIdentifier(req.RoomID); server != "" {
		via = append(via, server)
	}
	out := []string{}
	for _, v := range via {
		if v != "" && v != s.serverName && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// resident reports whether the room's full state is here (a create event is in the current state).
func (s *Server) resident(ctx context.Context, roomID id.RoomID) bool {
	_, err := s.store.CurrentStateEvent(ctx, roomID, event.StateCreate.Type, "")
	return err == nil
}

// joinRemote joins a room through another server: make_join, sign, send_join,
// check the returned state and auth chain, store them (state and auth chain
// as outliers, the returned state as the state before the join) and publish the join.
func (s *Server) joinRemote(ctx context.Context, req MembershipRequest) (id.EventID, error) {
	servers := s.joinVia(ctx, req)
	if len(servers) == 0 || s.remote == nil {
		return "", ErrRoomNotFound
	}
	versions := s.federationVersions()
	var errs []error
	for _, server := range servers {
		evID, err := s.joinRemoteVia(ctx, req, server, versions)
		if err == nil {
			return evID, nil
		}
		s.log.Info("remote join failed", logging.RoomID(req.RoomID), zap.String("destination", server), zap.Error(err))
		errs = append(errs, err)
		if errors.Is(err, ErrForbidden) {
			break
		}
	}
	return "", errors.Join(errs...)
}

func (s *Server) joinRemoteVia(ctx context.Context, req MembershipRequest, server string, versions []id.RoomVersion) (id.EventID, error) {
	tmpl, version, err := s.remote.MakeJoin(ctx, server, req.RoomID, req.Sender, versions)
	if err != nil {
		return "", err
	}
	if !Supported(version) {
		return "", fmt.Errorf("%w: %s", ErrUnsupportedRoomVersion, version)
	}
	p, raw, err := s.signTemplate(ctx, tmpl, version, req, event.MembershipJoin)
	if err != nil {
		return "", err
	}
	evID := p.InternalMeta.EventID
	stateRaw, chainRaw, joined, err := s.remote.SendJoin(ctx, server, req.RoomID, evID, raw)
	if err != nil {
		return "", err
	}
	if len(joined) > 0 && !isV1(version) {
		// The resident server's copy carries its signature (a restricted
		// join it authorised): keep it if it is the same event.
		if e, err := s.parseRemote(version, joined); err == nil && e.id == evID {
			p, raw = e.p, e.json
		}
	}
	// Check the state and auth chain: signatures, hashes, auth rules.
	byID := map[id.EventID]*remoteEvent{}
	for _, list := range [][]jsontext.Value{chainRaw, stateRaw} {
		for _, r := range list {
			e, err := s.parseRemote(version, r)
			if err != nil {
				s.log.Info("send_join event failed checks", zap.Error(err))
				continue
			}
			if e.p.RoomID != req.RoomID && e.p.Type != event.StateCreate.Type {
				continue
			}
			byID[e.id] = e
		}
	}
	state := map[storage.StateKeyTuple]id.EventID{}
	for _, r := range stateRaw {
		evID, err := eventIDOf(version, r)
		if err != nil {
			continue
		}
		if e := byID[evID]; e != nil && e.p.StateKey != nil {
			state[storage.StateKeyTuple{Type: e.p.Type, StateKey: *e.p.StateKey}] = evID
		}
	}
	ordered := byDepth(byID)
	rejected := map[id.EventID]bool{}
	getEvents := func(ids []id.EventID) ([]*pdu.PDU, error) {
		return pdusFrom(ids, func(x id.EventID) (*pdu.PDU, bool) {
			e := byID[x]
			if e == nil {
				return nil, true // only the send_join response counts: nothing stored
			}
			e.p.InternalMeta.Rejected = rejected[x]
			return e.p, true
		}, nil)
	}
	for _, e := range ordered {
		if err := authrules.Authorize(version, e.p, nil, getEvents, s.getKey); err != nil {
			rejected[e.id] = true
			s.log.Info("send_join state event rejected", logging.EventID(e.id), zap.Error(err))
		}
	}
	createID, ok := state[storage.StateKeyTuple{Type: event.StateCreate.Type}]
	if !ok || rejected[createID] {
		return "", fmt.Errorf("%w: send_join state has no valid create event", ErrRemote)
	}
	lookup := func(t, k string) *pdu.PDU {
		if x, ok := state[storage.StateKeyTuple{Type: t, StateKey: k}]; ok && !rejected[x] {
			return byID[x].p
		}
		return nil
	}
	if err := s.authorizeAgainst(version, p, lookup); err != nil {
		return "", fmt.Errorf("%w: join not allowed by the room state: %v", ErrForbidden, err)
	}
	for k, x := range state {
		if rejected[x] {
			delete(state, k)
		}
	}
	return evID, s.storeJoin(ctx, req.RoomID, version, byID[createID].p.Sender, ordered, rejected, state, p, raw)
}

// storeJoin persists a remote join: the state and auth chain as outliers,
// then the join event on top of state. The room's cache entry is dropped.
func (s *Server) storeJoin(ctx context.Context, roomID id.RoomID, version id.RoomVersion, creator id.UserID, outliers []*remoteEvent,
	rejected map[id.EventID]bool, state map[storage.StateKeyTuple]id.EventID, join *pdu.PDU, raw []byte) error {
	var newRoom *storage.Room
	if _, err := s.store.GetRoom(ctx, roomID); errors.Is(err, storage.ErrNotFound) {
		newRoom = &storage.Room{RoomID: roomID, Version: version, Creator: creator, CreatedTS: nowMS()}
	} else if err != nil {
		return err
	}
	ids := make([]id.EventID, 0, len(outliers))
	for _, e := range outliers {
		ids = append(ids, e.id)
	}
	known, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return err
	}
	have := map[id.EventID]bool{}
	for _, e := range known {
		have[e.EventID] = true
	}
	req := storage.StoreEventsRequest{RoomID: roomID, NewRoom: newRoom, InitialState: state}
	for _, e := range outliers {
		if have[e.id] {
			continue
		}
		ne := &storage.NewEvent{Event: storage.Event{EventID: e.id, RoomID: roomID, Type: e.p.Type, StateKey: e.p.StateKey,
			Sender: e.p.Sender, Depth: e.p.Depth, OriginTS: e.p.OriginServerTS, JSON: e.json, Outlier: true, Rejected: rejected[e.id]}}
		if e.p.Type == event.StateMember.Type {
			ne.Membership = gjson.GetBytes(e.p.Content, "membership").Str
		}
		req.Events = append(req.Events, ne)
	}
	sk := string(join.Sender)
	joinEv := &storage.NewEvent{Event: storage.Event{EventID: join.InternalMeta.EventID, RoomID: roomID, Type: join.Type, StateKey: &sk,
		Sender: join.Sender, Depth: join.Depth, OriginTS: join.OriginServerTS, JSON: raw, Membership: string(event.MembershipJoin)},
		PrevEvents: join.PrevEvents, UpdateCurrentState: true}
	req.Events = append(req.Events, joinEv)
	s.dropRoom(roomID)
	stored, err := s.store.StoreEvents(ctx, req)
	s.dropRoom(roomID)
	if err != nil {
		return fmt.Errorf("store remote join: %w", err)
	}
	last := stored[len(stored)-1]
	out := joinEv.Event
	out.StreamPos, out.StateBefore, out.StateAfter = last.StreamPos, last.StateBefore, last.StateAfter
	s.publishRelayed(&out, version)
	return s.store.UnforgetRoom(ctx, join.Sender, roomID)
}

// dropRoom evicts a room's cache entry (after a write that bypassed it).
func (s *Server) dropRoom(roomID id.RoomID) {
	s.mu.Lock()
	r := s.rooms[roomID]
	s.mu.Unlock()
	if r == nil {
		return
	}
	r.mu.Lock()
	s.forget(r)
	r.mu.Unlock()
}

// ReceiveInvite handles an invite from origin for a local user (invite v2):
// it checks and countersigns the event and records the invite. The signed
// event is returned to the inviting server.
//
// strippedState is the invite_room_state the inviting server sent; it is kept
// in the invite's unsigned section and shown to the invitee as invite_state.
func (s *Server) ReceiveInvite(ctx context.Context, origin string, roomID id.RoomID, eventID id.EventID, version id.RoomVersion, raw []byte, strippedState []jsontext.Value) ([]byte, error) {
	if !Supported(version) {
		return nil, ErrIncompatibleVersion
	}
	re, err := s.parseRemote(version, raw)
	if err != nil {
		return nil, err
	}
	p := re.p
	switch {
	case re.id != eventID:
		return nil, fmt.Errorf("%w: event ID is %s, not %s", ErrBadRequest, re.id, eventID)
	case p.RoomID != roomID || p.Type != event.StateMember.Type || p.StateKey == nil:
		return nil, fmt.Errorf("%w: not a membership event of this room", ErrBadRequest)
	case gjson.GetBytes(p.Content, "membership").Str != string(event.MembershipInvite):
		return nil, fmt.Errorf("%w: membership is not invite", ErrBadRequest)
	case id.UserID(*p.StateKey).Homeserver() != s.serverName:
		return nil, fmt.Errorf("%w: invitee is not local", ErrBadRequest)
	case p.Sender.Homeserver() != origin:
		return nil, fmt.Errorf("%w: sender is not from %s", ErrForbidden, origin)
	}
	if _, err := s.store.GetAccount(ctx, id.UserID(*p.StateKey)); err != nil {
		return nil, fmt.Errorf("%w: no such user", ErrEventNotFound)
	}
	var signed []byte
	if isV1(version) {
		signed, err = s.countersignV1(version, re.json)
	} else if err = p.Sign(version, s.serverName, s.key.ID, s.key.Priv); err == nil {
		signed, err = json.Marshal(p)
	}
	if err != nil {
		return nil, err
	}
	p.InternalMeta.EventID = re.id
	if s.resident(ctx, roomID) {
		servers, err := s.JoinedServers(ctx, roomID)
		if err != nil {
			return nil, err
		}
		if slices.Contains(servers, s.serverName) {
			// A local member is joined: the invite also arrives in a
			// transaction; nothing to store here.
			return signed, nil
		}
		// Every local user left, so this server's copy of the room is stale
		// and no transaction will bring the invite: record it on that copy.
		if err := s.storeStaleInvite(ctx, roomID, version, p, signed); err != nil {
			return nil, err
		}
		return signed, nil
	}
	var stripped []jsontext.Value
	for _, st := range strippedState {
		r := gjson.ParseBytes(st)
		if r.IsObject() && r.Get("type").Type == gjson.String && r.Get("state_key").Type == gjson.String && r.Get("content").IsObject() {
			stripped = append(stripped, jsontext.Value(eventutil.StrippedState(nil, st)))
		}
	}
	unsigned, err := json.Marshal(map[string]any{"invite_room_state": stripped})
	if err != nil {
		return nil, err
	}
	if len(stripped) == 0 {
		unsigned = nil
	}
	if err := s.storeOutlierMembership(ctx, roomID, version, p, signed, unsigned, false); err != nil {
		return nil, err
	}
	return signed, nil
}

// storeStaleInvite records an invite, as an outlier, in a room whose copy
// here stopped being updated when every local user left: the invitee's
// membership in the current state becomes the invite, the rest is kept.
func (s *Server) storeStaleInvite(ctx context.Context, roomID id.RoomID, version id.RoomVersion, p *pdu.PDU, raw []byte) error {
	r, err := s.lockRoom(ctx, roomID)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	if r.version != version {
		return fmt.Errorf("%w: room version mismatch", ErrBadRequest)
	}
	evID := p.InternalMeta.EventID
	if _, err := s.store.GetEvent(ctx, evID); err == nil {
		return nil
	}
	k := storage.StateKeyTuple{Type: p.Type, StateKey: *p.StateKey}
	initial := make(map[storage.StateKeyTuple]id.EventID, len(r.state)+1)
	for key, e := range r.state {
		initial[key] = e.id
	}
	initial[k] = evID
	ne := &storage.NewEvent{Event: storage.Event{EventID: evID, RoomID: roomID, Type: p.Type, StateKey: p.StateKey, Sender: p.Sender,
		Depth: p.Depth, OriginTS: p.OriginServerTS, JSON: raw, Membership: string(event.MembershipInvite), Outlier: true}}
	stored, err := s.store.StoreEvents(ctx, storage.StoreEventsRequest{RoomID: roomID, Events: []*storage.NewEvent{ne}, InitialState: initial})
	s.forget(r)
	if err != nil {
		return err
	}
	out := ne.Event
	out.StreamPos = stored[0].StreamPos
	s.publish([]*storage.Event{&out}, version)
	return nil
}

// signTemplate turns a make_join/make_leave/make_knock template into our
// signed event: the content gets our profile (joins), req.Extra and reason.
func (s *Server) signTemplate(ctx context.Context, tmpl []byte, version id.RoomVersion, req MembershipRequest, m event.Membership) (*pdu.PDU, []byte, error) {
	p, _, err := parseEvent(version, tmpl)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: make_%s template: %v", ErrRemote, m, err)
	}
	if p.Type != event.StateMember.Type || p.Sender != req.Sender || p.StateKey == nil || *p.StateKey != string(req.Sender) || p.RoomID != req.RoomID {
		return nil, nil, fmt.Errorf("%w: make_%s template is not our membership event", ErrRemote, m)
	}
	content := map[string]any{}
	_ = json.Unmarshal(p.Content, &content)
	if m == event.MembershipJoin {
		s.addProfile(ctx, req.Sender, content)
	}
	for k, v := range req.Extra {
		content[k] = v
	}
	content["membership"] = m
	if req.Reason != "" {
		content["reason"] = req.Reason
	}
	if p.Content, err = json.Marshal(content); err != nil {
		return nil, nil, err
	}
	if isV1(version) {
		return s.signV1Template(tmpl, version, p.Content)
	}
	p.OriginServerTS = nowMS()
	p.Hashes, p.Signatures, p.Unsigned = nil, nil, nil
	if err := p.Sign(version, s.serverName, s.key.ID, s.key.Priv); err != nil {
		return nil, nil, err
	}
	evID, err := p.GetEventID(version)
	if err != nil {
		return nil, nil, err
	}
	p.InternalMeta.EventID = evID
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, nil, err
	}
	return p, raw, nil
}

// membershipRemote leaves (rejecting an invite) or knocks on a room this
// server is not in, through a server that is: make_leave/make_knock, sign,
// send_leave/send_knock. The event is recorded locally as the user's
// membership.
func (s *Server) membershipRemote(ctx context.Context, req MembershipRequest, m event.Membership) (id.EventID, error) {
	servers := s.joinVia(ctx, req)
	if len(servers) == 0 {
		return "", ErrRoomNotFound
	}
	var errs []error
	for _, server := range servers {
		tmpl, version, err := s.remote.MakeMembership(ctx, server, req.RoomID, req.Sender, m, s.federationVersions())
		if err == nil && !Supported(version) {
			err = fmt.Errorf("%w: %s", ErrUnsupportedRoomVersion, version)
		}
		var p *pdu.PDU
		var raw []byte
		if err == nil {
			p, raw, err = s.signTemplate(ctx, tmpl, version, req, m)
		}
		if err == nil {
			err = s.remote.SendMembership(ctx, server, req.RoomID, p.InternalMeta.EventID, raw, m)
		}
		if err == nil {
			return p.InternalMeta.EventID, s.storeOutlierMembership(ctx, req.RoomID, version, p, raw, nil, true)
		}
		s.log.Info("remote membership failed", logging.RoomID(req.RoomID), zap.String("membership", string(m)), zap.String("destination", server), zap.Error(err))
		errs = append(errs, err)
	}
	if m == event.MembershipLeave {
		// No server in the room took the rejection (unreachable, refused,
		// gone): reject the invite (or withdraw the knock) here alone.
		if evID, err := s.localOutOfBandLeave(ctx, req); err == nil {
			return evID, nil
		} else if !errors.Is(err, ErrNotInvited) {
			errs = append(errs, err)
		}
	}
	return "", errors.Join(errs...)
}

// ErrNotInvited: the user has no pending invite or knock to withdraw here.
var ErrNotInvited = errors.New("no invite or knock to reject")

// localOutOfBandLeave records the rejection of a remote invite (or the
// withdrawal of a knock) that could not be sent to any server of the room:
// a leave event signed by this server on top of the invite, stored as an
// outlier like the invite itself.
func (s *Server) localOutOfBandLeave(ctx context.Context, req MembershipRequest) (id.EventID, error) {
	cur, err := s.store.CurrentStateEvent(ctx, req.RoomID, event.StateMember.Type, string(req.Sender))
	if err != nil || (cur.Membership != string(event.MembershipInvite) && cur.Membership != string(event.MembershipKnock)) {
		return "", ErrNotInvited
	}
	info, err := s.store.GetRoom(ctx, req.RoomID)
	if err != nil {
		return "", err
	}
	content := map[string]any{"membership": event.MembershipLeave}
	if req.Reason != "" {
		content["reason"] = req.Reason
	}
	c, err := json.Marshal(content)
	if err != nil {
		return "", err
	}
	sk := string(req.Sender)
	p := &pdu.PDU{RoomID: req.RoomID, Sender: req.Sender, Type: event.StateMember.Type, StateKey: &sk, Content: c,
		OriginServerTS: nowMS(), Depth: cur.Depth + 1, PrevEvents: []id.EventID{cur.EventID}, AuthEvents: []id.EventID{cur.EventID}}
	var raw []byte
	if isV1(info.Version) {
		_, ref, err := parseEvent(info.Version, cur.JSON)
		if err != nil {
			return "", err
		}
		tmpl, err := v1Template(p, map[id.EventID][]byte{cur.EventID: ref})
		if err != nil {
			return "", err
		}
		if p, raw, err = s.signV1Template(tmpl, info.Version, c); err != nil {
			return "", err
		}
	} else {
		if err := p.Sign(info.Version, s.serverName, s.key.ID, s.key.Priv); err != nil {
			return "", err
		}
		if p.InternalMeta.EventID, err = p.GetEventID(info.Version); err != nil {
			return "", err
		}
		if raw, err = json.Marshal(p); err != nil {
			return "", err
		}
	}
	if err := s.storeOutlierMembership(ctx, req.RoomID, info.Version, p, raw, nil, false); err != nil {
		return "", err
	}
	return p.InternalMeta.EventID, nil
}

func (s *Server) federationVersions() []id.RoomVersion {
	var out []id.RoomVersion
	_, supported := s.RoomVersions()
	for v := range supported {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// storeOutlierMembership records a local user's membership in a room whose
// state this server does not have (invites received, knocks, rejected
// invites): the event is stored as an outlier and is the room's only state.
// relayed: a resident server accepted it and relays it (OutputEvent.Relayed).
func (s *Server) storeOutlierMembership(ctx context.Context, roomID id.RoomID, version id.RoomVersion, p *pdu.PDU, raw, unsigned []byte, relayed bool) error {
	var newRoom *storage.Room
	if info, err := s.store.GetRoom(ctx, roomID); errors.Is(err, storage.ErrNotFound) {
		newRoom = &storage.Room{RoomID: roomID, Version: version, Creator: p.Sender, CreatedTS: nowMS()}
	} else if err != nil {
		return err
	} else if info.Version != version {
		return fmt.Errorf("%w: room version mismatch", ErrBadRequest)
	}
	evID := p.InternalMeta.EventID
	if _, err := s.store.GetEvent(ctx, evID); err == nil {
		return nil
	}
	k := storage.StateKeyTuple{Type: p.Type, StateKey: *p.StateKey}
	ne := &storage.NewEvent{Event: storage.Event{EventID: evID, RoomID: roomID, Type: p.Type, StateKey: p.StateKey, Sender: p.Sender,
		Depth: p.Depth, OriginTS: p.OriginServerTS, JSON: raw, Membership: gjson.GetBytes(p.Content, "membership").Str, Outlier: true, Unsigned: unsigned}}
	s.dropRoom(roomID)
	stored, err := s.store.StoreEvents(ctx, storage.StoreEventsRequest{RoomID: roomID, NewRoom: newRoom, Events: []*storage.NewEvent{ne},
		InitialState: map[storage.StateKeyTuple]id.EventID{k: evID}})
	s.dropRoom(roomID)
	if err != nil {
		return err
	}
	out := ne.Event
	out.StreamPos = stored[0].StreamPos
	if relayed {
		s.publishRelayed(&out, version)
	} else {
		s.publish([]*storage.Event{&out}, version)
	}
	return nil
}

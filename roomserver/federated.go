package roomserver

import (
	"bytes"
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"parley/internal/authrules"
	"parley/internal/logging"
	"parley/roomserver/stateres"
	"parley/storage"
)

// Federation errors.
var (
	// ErrIncompatibleVersion: the remote server does not support the room's version.
	ErrIncompatibleVersion = errors.New("incompatible room version")
	// ErrNotResident: this server has no joined member in the room.
	ErrNotResident = errors.New("server not in room")
	// ErrRemote: a remote server failed or refused the request.
	ErrRemote = errors.New("remote server error")
	// ErrRemoteNotFound: a remote server answered that what was asked for does not exist.
	ErrRemoteNotFound = errors.New("not found on remote server")
)

// Remote is what the roomserver asks of other servers. The federation
// package implements it over signed server-server requests. Events are
// federation-format PDU JSON.
type Remote interface {
	// MakeJoin asks server for a join event template; it returns the template and the room version.
	MakeJoin(ctx context.Context, server string, roomID id.RoomID, userID id.UserID, versions []id.RoomVersion) (jsontext.Value, id.RoomVersion, error)
	// SendJoin submits a signed join; it returns the room state before the join and its auth chain.
	// SendJoin also returns the join as the resident server stored it
	// (countersigned for a restricted join), or nothing.
	SendJoin(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, ev jsontext.Value) (state, authChain []jsontext.Value, joined jsontext.Value, err error)
	// Invite sends an invite to the invitee's server and returns the event signed by it.
	Invite(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, version id.RoomVersion, ev jsontext.Value, strippedState []jsontext.Value) (jsontext.Value, error)
	// MissingEvents fetches events between earliest and latest (exclusive) from server.
	MissingEvents(ctx context.Context, server string, roomID id.RoomID, earliest, latest []id.EventID, limit int) ([]jsontext.Value, error)
	// MakeMembership asks server for a leave or knock event template (make_leave, make_knock).
	MakeMembership(ctx context.Context, server string, roomID id.RoomID, userID id.UserID, m event.Membership, versions []id.RoomVersion) (jsontext.Value, id.RoomVersion, error)
	// StateIDs returns the IDs of the state before eventID and of its auth chain (state_ids).
	StateIDs(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) (state, authChain []id.EventID, err error)
	// State returns the state before eventID and its auth chain (state).
	State(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) (state, authChain []jsontext.Value, err error)
	// Event fetches one event (event).
	Event(ctx context.Context, server string, eventID id.EventID) (jsontext.Value, error)
	// SendMembership submits a signed leave or knock (send_leave v2, send_knock).
	SendMembership(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, ev jsontext.Value, m event.Membership) error
	// Backfill fetches up to limit events preceding (and including) from (backfill).
	Backfill(ctx context.Context, server string, roomID id.RoomID, from []id.EventID, limit int) ([]jsontext.Value, error)
}

// SetRemote gives the roomserver its link to other servers (nil disables
// federation). Call it before serving requests.
func (s *Server) SetRemote(r Remote) { s.remote = r }

// GetRemote returns the roomserver's link to other servers (nil when
// federation is disabled), so that tests can wrap it.
func (s *Server) GetRemote() Remote { return s.remote }

// remoteEvent is a PDU received from another server, checked.
type remoteEvent struct {
	p    *pdu.PDU
	id   id.EventID
	json []byte
	// ref is the reference hash of a v1/v2 event (nil otherwise).
	ref []byte
}

// byDepth lists remote events oldest first (depth, then ID), the order in
// which auth checks meet auth events before what they authorise.
func byDepth(byID map[id.EventID]*remoteEvent) []*remoteEvent {
	ordered := make([]*remoteEvent, 0, len(byID))
	for _, e := range byID {
		ordered = append(ordered, e)
	}
	sort.Slice(ordered, func(i, j int) bool {
		if ordered[i].p.Depth != ordered[j].p.Depth {
			return ordered[i].p.Depth < ordered[j].p.Depth
		}
		return ordered[i].id < ordered[j].id
	})
	return ordered
}

// pdusFrom answers an eventauth GetEventsFunc over a set of remote events:
// local gives an event's PDU when the set holds it (nil for one the set
// holds but may not be used), the rest come from stored (nil: none).
func pdusFrom(want []id.EventID, local func(id.EventID) (*pdu.PDU, bool), stored eventauth.GetEventsFunc) ([]*pdu.PDU, error) {
	out := make([]*pdu.PDU, len(want))
	var rest []id.EventID
	for i, x := range want {
		if p, ok := local(x); ok {
			out[i] = p
		} else {
			rest = append(rest, x)
		}
	}
	if len(rest) > 0 && stored != nil {
		found, err := stored(rest)
		if err != nil {
			return nil, err
		}
		for _, p := range found {
			if p == nil {
				continue
			}
			if i := slices.Index(want, p.InternalMeta.EventID); i >= 0 {
				out[i] = p
			}
		}
	}
	if len(want) == 1 && out[0] == nil {
		return nil, nil
	}
	return out, nil
}

// parseRemote parses a PDU of room version v received over federation and
// runs the first checks on receipt (server-server API, "Checks performed on
// receipt of a PDU"): 1. valid event (size, shape), 2. valid signature of the
// sender's server, 3. valid content hash, else the event is redacted.
func (s *Server) parseRemote(v id.RoomVersion, raw []byte) (*remoteEvent, error) {
	if isV1(v) {
		return s.parseRemoteV1(v, raw)
	}
	if len(raw) > maxEventBytes {
		return nil, fmt.Errorf("%w: event larger than %d bytes", ErrTooLarge, maxEventBytes)
	}
	if err := checkCanonical(v, raw); err != nil {
		return nil, err
	}
	p, err := parsePDU(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid PDU: %v", ErrBadRequest, err)
	}
	if p.Type == "" || p.Sender == "" || p.Content == nil {
		return nil, fmt.Errorf("%w: PDU lacks type, sender or content", ErrBadRequest)
	}
	if _, _, err := p.Sender.ParseAndValidateRelaxed(); err != nil {
		return nil, fmt.Errorf("%w: invalid sender %q", ErrBadRequest, p.Sender)
	}
	p.Unsigned = nil
	evID, err := p.GetEventID(v)
	if err != nil {
		return nil, fmt.Errorf("%w: event id: %v", ErrBadRequest, err)
	}
	p.InternalMeta.EventID = evID
	if err := p.VerifySignature(v, p.Sender.Homeserver(), s.getKey); err != nil {
		return nil, fmt.Errorf("%w: signature of %s: %v", ErrForbidden, p.Sender.Homeserver(), err)
	}
	if !p.VerifyContentHash() {
		s.log.Info("content hash mismatch, redacting", logging.EventID(evID))
		p = p.Redact(v)
		p.InternalMeta.EventID = evID
	}
	out, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return &remoteEvent{p: p, id: evID, json: out}, nil
}

// errStoredRejected marks an event that failed the auth checks and was stored as rejected.
var errStoredRejected = errors.New("event rejected")

// checkCanonical rejects, in room version 6 and later, an event that is not
// canonical JSON (floats, integers beyond ±(2^53-1)): such an event is
// invalid, not merely redacted.
func checkCanonical(v id.RoomVersion, raw []byte) error {
	if !v.ForbidFloatsAndBigInts() {
		return nil
	}
	c := jsontext.Value(bytes.Clone(raw))
	if err := canonicaljson.Canonicalize(&c); err != nil {
		return fmt.Errorf("%w: event is not valid canonical JSON: %v", ErrBadRequest, err)
	}
	return nil
}

// outOfBandMembership takes a remote server's leave or ban of a local user
// whose only tie to a room this server is not in is a pending invite or
// knock (an invite rescinded by its sender, a knock refused): without the
// room's state it is checked against its sender's signature only and stored
// as an outlier, like the invite. handled is false for every other event.
func (s *Server) outOfBandMembership(ctx context.Context, origin string, info *storage.Room, ev *remoteEvent) (handled bool, err error) {
	p := ev.p
	if isV1(info.Version) || p.Type != event.StateMember.Type || p.StateKey == nil || id.UserID(*p.StateKey).Homeserver() != s.serverName {
		return false, nil
	}
	if m := gjson.GetBytes(p.Content, "membership").Str; m != string(event.MembershipLeave) && m != string(event.MembershipBan) {
		return false, nil
	}
	if s.resident(ctx, info.RoomID) {
		return false, nil
	}
	cur, err := s.store.CurrentStateEvent(ctx, info.RoomID, event.StateMember.Type, *p.StateKey)
	if err != nil || (cur.Membership != string(event.MembershipInvite) && cur.Membership != string(event.MembershipKnock)) {
		return false, nil
	}
	if p.Sender.Homeserver() != origin {
		return true, fmt.Errorf("%w: sender is not from %s", ErrForbidden, origin)
	}
	if cur.Membership == string(event.MembershipInvite) && p.Sender != cur.Sender {
		// Without the room's state nothing says whether anyone else may
		// rescind the invite: only its sender may.
		return true, fmt.Errorf("%w: only the inviter can rescind an invite here", ErrForbidden)
	}
	if err := p.VerifySignature(info.Version, origin, s.getKey); err != nil {
		return true, fmt.Errorf("%w: membership not signed by %s: %v", ErrForbidden, origin, err)
	}
	return true, s.storeOutlierMembership(ctx, info.RoomID, info.Version, p, ev.json, nil, false)
}

// RemoteResult is the outcome of one PDU of an inbound transaction.
type RemoteResult struct {
	EventID id.EventID
	// Err is nil when the event was processed: accepted, soft-failed,
	// rejected by the auth rules (and stored as such) or already known.
	Err error
}

// InputRemoteEvents runs the checks on receipt over PDUs from origin (an
// inbound /send transaction) and persists them. Events of rooms this server
// does not know are skipped. Events are processed in order per room.
func (s *Server) InputRemoteEvents(ctx context.Context, origin string, raws []jsontext.Value) []RemoteResult {
	var out []RemoteResult
	for _, raw := range raws {
		roomID := id.RoomID(gjson.GetBytes(raw, "room_id").Str)
		info, err := s.store.GetRoom(ctx, roomID)
		if err != nil {
			s.log.Debug("pdu for unknown room dropped", logging.RoomID(roomID), zap.String("origin", origin))
			continue
		}
		ev, err := s.parseRemote(info.Version, raw)
		if err != nil {
			if evID, idErr := eventIDOf(info.Version, raw); idErr == nil {
				out = append(out, RemoteResult{EventID: evID, Err: err})
			}
			continue
		}
		if ok, err := s.ServerAllowed(ctx, roomID, origin); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("%w: server %s is denied by the room's server ACL", ErrForbidden, origin)
			}
			out = append(out, RemoteResult{EventID: ev.id, Err: err})
			continue
		}
		if handled, err := s.outOfBandMembership(ctx, origin, info, ev); handled {
			out = append(out, RemoteResult{EventID: ev.id, Err: err})
			continue
		}
		r, err := s.lockRoom(ctx, roomID)
		if err != nil {
			out = append(out, RemoteResult{EventID: ev.id, Err: err})
			continue
		}
		err = s.inputLocked(ctx, r, origin, ev, 0)
		r.mu.Unlock()
		if errors.Is(err, errStoredRejected) {
			// Processed: the event failed the auth checks and is stored as
			// rejected; that is no error of the transaction (as Synapse).
			s.log.Info("remote event rejected", logging.EventID(ev.id), zap.String("origin", origin), zap.Error(err))
			err = nil
		}
		out = append(out, RemoteResult{EventID: ev.id, Err: err})
	}
	return out
}

func eventIDOf(v id.RoomVersion, raw []byte) (id.EventID, error) {
	if isV1(v) {
		if evID := gjson.GetBytes(raw, "event_id").Str; evID != "" {
			return id.EventID(evID), nil
		}
		return "", fmt.Errorf("%w: no event_id", ErrBadRequest)
	}
	p, err := parsePDU(raw)
	if err != nil {
		return "", err
	}
	return p.GetEventID(v)
}

// maxMissingDepth bounds the recursion when fetching missing prev_events.
const maxMissingDepth = 2

// inputLocked checks one remote event against the room and persists it. r
// must be locked. Checks on receipt 4 to 6: auth against the event's
// auth_events (rejected if it fails), against the state before the event
// (rejected), and against the current state (soft-failed: stored but not
// part of the timeline or current state).
func (s *Server) inputLocked(ctx context.Context, r *room, origin string, ev *remoteEvent, depth int) error {
	p := ev.p
	if p.RoomID != r.id {
		return fmt.Errorf("%w: event is for room %s", ErrBadRequest, p.RoomID)
	}
	if _, err := s.store.GetEvent(ctx, ev.id); err == nil {
		return nil // already known
	}
	if p.Type == event.StateCreate.Type {
		return fmt.Errorf("%w: m.room.create in an existing room", ErrForbidden)
	}
	// Fill gaps: prev_events we do not have are fetched from the origin
	// (get_missing_events, for the event the origin pushed to us).
	missing, err := s.missingEvents(ctx, p.PrevEvents)
	if err != nil {
		return err
	}
	if len(missing) > 0 && s.remote != nil && depth == 0 {
		if err := s.fetchMissing(ctx, r, origin, ev, depth); err != nil {
			s.log.Info("get_missing_events failed", logging.EventID(ev.id), zap.String("origin", origin), zap.Error(err))
		}
		if _, err := s.store.GetEvent(ctx, ev.id); err == nil {
			return nil // the origin returned the event itself among the missing ones
		}
		if missing, err = s.missingEvents(ctx, p.PrevEvents); err != nil {
			return err
		}
	}
	// Still missing: ask for the state at each missing prev_event (state_ids).
	var gapStates []map[storage.StateKeyTuple]id.EventID
	if len(missing) > 0 && s.remote != nil && depth < maxMissingDepth {
		for _, m := range missing {
			st, err := s.stateAfterRemote(ctx, r, origin, m)
			if err != nil {
				s.log.Info("state at a missing prev_event not obtained", logging.EventID(m), zap.String("origin", origin), zap.Error(err))
				continue
			}
			gapStates = append(gapStates, st)
		}
		if missing, err = s.missingEvents(ctx, p.PrevEvents); err != nil {
			return err
		}
	}
	if len(missing) == len(p.PrevEvents) {
		return fmt.Errorf("%w: none of the prev_events %v are known", ErrBadRequest, missing)
	}

	ne := &storage.NewEvent{
		Event: storage.Event{EventID: ev.id, RoomID: r.id, Type: p.Type, StateKey: p.StateKey, Sender: p.Sender,
			Depth: p.Depth, OriginTS: p.OriginServerTS, JSON: ev.json},
		PrevEvents: p.PrevEvents,
	}
	if p.Type == event.StateMember.Type {
		ne.Membership = gjson.GetBytes(p.Content, "membership").Str
	}
	// 4. Auth against the event's own auth_events.
	authErr := authrules.Authorize(r.version, p, nil, s.storedPDUs(ctx, r.version), s.getKey)
	// 5. Auth against the state before the event.
	var before map[storage.StateKeyTuple]id.EventID
	if authErr == nil {
		var err error
		if before, err = s.stateBefore(ctx, r, p, gapStates); err != nil {
			return err
		}
		lookup := r.lookup
		if before != nil {
			if lookup, err = s.lookupIn(ctx, r.version, p, before); err != nil {
				return err
			}
		}
		authErr = s.authorizeAgainst(r.version, p, lookup)
	}
	if authErr != nil {
		ne.Rejected = true
	} else if err := s.authorizeAgainst(r.version, p, func(t, k string) *pdu.PDU {
		if e, ok := r.state[storage.StateKeyTuple{Type: t, StateKey: k}]; ok {
			return e.pdu
		}
		return nil
	}); err != nil {
		// 6. Soft fail against the current state.
		ne.SoftFailed = true
		s.log.Info("event soft-failed", logging.EventID(ev.id), zap.Error(err))
	}
	if before != nil && !ne.Rejected && !ne.SoftFailed {
		// A fork: the new current state is the resolution of both sides.
		return s.inputFork(ctx, r, ev, ne, before)
	}
	w := newWorking(r)
	w.events = []*storage.NewEvent{ne}
	w.depth = max(r.depth, p.Depth)
	if !ne.Rejected && !ne.SoftFailed && p.Type == event.EventRedaction.Type {
		target, ok, err := s.remoteRedactionTarget(ctx, w, p)
		if err != nil {
			return err
		}
		if !ok {
			ne.SoftFailed = true
			s.log.Info("redaction of an event of another room soft-failed", logging.EventID(ev.id))
		} else if target != nil {
			if err := applyRedaction(w, ne, target); err != nil {
				return err
			}
		}
	}
	accepted := !ne.Rejected && !ne.SoftFailed
	if accepted {
		ext := slices.DeleteFunc(slices.Clone(r.extremities), func(e id.EventID) bool { return slices.Contains(p.PrevEvents, e) })
		w.extremities = append(ext, ev.id)
		w.refs = extremityRefs(r.refs, w.extremities, ev)
		if p.StateKey != nil {
			k := storage.StateKeyTuple{Type: p.Type, StateKey: *p.StateKey}
			if prev, ok := r.state[k]; ok {
				ne.Unsigned = prevUnsigned(prev)
			}
			ne.UpdateCurrentState = true
			w.overlay[k] = stateEntry{id: ev.id, pdu: p, ref: ev.ref}
		}
	}
	evs, err := s.commit(ctx, w, nil)
	if err != nil {
		return err
	}
	if authErr != nil {
		return fmt.Errorf("%w: %w: %v", ErrForbidden, errStoredRejected, authErr)
	}
	if accepted {
		s.publish(evs, r.version)
	}
	return nil
}

// missingEvents returns the IDs among ids that are not stored.
func (s *Server) missingEvents(ctx context.Context, ids []id.EventID) ([]id.EventID, error) {
	have, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []id.EventID
	for _, i := range ids {
		if !slices.ContainsFunc(have, func(e *storage.Event) bool { return e.EventID == i }) {
			out = append(out, i)
		}
	}
	return out, nil
}

// fetchMissing asks origin for the events between our forward extremities
// and ev (get_missing_events) and inputs them oldest first.
func (s *Server) fetchMissing(ctx context.Context, r *room, origin string, ev *remoteEvent, depth int) error {
	raws, err := s.remote.MissingEvents(ctx, origin, r.id, r.extremities, []id.EventID{ev.id}, 20)
	if err != nil {
		return err
	}
	var evs []*remoteEvent
	for _, raw := range raws {
		e, err := s.parseRemote(r.version, raw)
		if err != nil {
			s.log.Info("missing event failed checks", zap.Error(err))
			continue
		}
		if e.id != ev.id && !slices.ContainsFunc(evs, func(o *remoteEvent) bool { return o.id == e.id }) {
			evs = append(evs, e)
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].p.Depth < evs[j].p.Depth })
	for _, e := range evs {
		if err := s.inputLocked(ctx, r, origin, e, depth+1); err != nil {
			s.log.Info("missing event not accepted", logging.EventID(e.id), zap.Error(err))
		}
	}
	return nil
}

// storedPDUs is an eventauth.GetEventsFunc over stored events (rejected flags kept).
func (s *Server) storedPDUs(ctx context.Context, v id.RoomVersion) eventauth.GetEventsFunc {
	return func(ids []id.EventID) ([]*pdu.PDU, error) {
		evs, err := s.store.GetEvents(ctx, ids)
		if err != nil {
			return nil, err
		}
		byID := make(map[id.EventID]*storage.Event, len(evs))
		for _, e := range evs {
			byID[e.EventID] = e
		}
		out := make([]*pdu.PDU, len(ids))
		for i, evID := range ids {
			e := byID[evID]
			if e == nil {
				if len(ids) == 1 {
					return nil, nil
				}
				continue
			}
			p, err := parseStored(v, e)
			if err != nil {
				return nil, err
			}
			out[i] = p
		}
		if len(ids) == 1 && out[0] == nil {
			return nil, nil
		}
		return out, nil
	}
}

// stateBefore returns the state before p: nil (meaning the room's current
// state) when p's prev_events are the room's forward extremities, else the
// resolution (state res v2) of the states after each known prev_event and
// of gapStates (the states after prev_events fetched as outliers).
func (s *Server) stateBefore(ctx context.Context, r *room, p *pdu.PDU, gapStates []map[storage.StateKeyTuple]id.EventID) (map[storage.StateKeyTuple]id.EventID, error) {
	if len(gapStates) == 0 && sameSet(p.PrevEvents, r.extremities) {
		return nil, nil
	}
	prevs, err := s.store.GetEvents(ctx, p.PrevEvents)
	if err != nil {
		return nil, err
	}
	var groups []int64
	for _, e := range prevs {
		if e.Rejected || e.Outlier || e.SoftFailed || e.StateAfter == 0 || slices.Contains(groups, e.StateAfter) {
			continue
		}
		groups = append(groups, e.StateAfter)
	}
	states := slices.Clone(gapStates)
	for _, g := range groups {
		ids, err := s.store.StateIDs(ctx, g)
		if err != nil {
			return nil, fmt.Errorf("state before %s: %w", p.InternalMeta.EventID, err)
		}
		states = append(states, ids)
	}
	switch len(states) {
	case 0:
		return nil, nil
	case 1:
		return states[0], nil
	}
	ids, err := s.resolveMaps(ctx, r.version, states)
	if err != nil {
		return nil, fmt.Errorf("state before %s: %w", p.InternalMeta.EventID, err)
	}
	return ids, nil
}

// lookupIn returns a state lookup over ids for the auth events p needs.
func (s *Server) lookupIn(ctx context.Context, v id.RoomVersion, p *pdu.PDU, ids map[storage.StateKeyTuple]id.EventID) (func(t, k string) *pdu.PDU, error) {
	want := []id.EventID{}
	for _, k := range p.AuthEventSelection(v) {
		if e, ok := ids[storage.StateKeyTuple{Type: k.Type, StateKey: k.StateKey}]; ok {
			want = append(want, e)
		}
	}
	evs, err := s.store.GetEvents(ctx, want)
	if err != nil {
		return nil, err
	}
	byKey := map[storage.StateKeyTuple]*pdu.PDU{}
	for _, e := range evs {
		pp, err := parseStored(v, e)
		if err != nil {
			return nil, err
		}
		byKey[storage.StateKeyTuple{Type: e.Type, StateKey: *e.StateKey}] = pp
	}
	return func(t, k string) *pdu.PDU { return byKey[storage.StateKeyTuple{Type: t, StateKey: k}] }, nil
}

// resolveFork computes the room's new current state after accepting ev on
// a fork: state resolution over the current state and the state after ev.
func (s *Server) resolveFork(ctx context.Context, r *room, ev *remoteEvent, before map[storage.StateKeyTuple]id.EventID) (map[storage.StateKeyTuple]id.EventID, error) {
	cur := stateres.StateMap{}
	for k, e := range r.state {
		cur[stateres.StateKey{Type: k.Type, StateKey: k.StateKey}] = e.id
	}
	after := stateres.StateMap{}
	for k, e := range before {
		after[stateres.StateKey{Type: k.Type, StateKey: k.StateKey}] = e
	}
	if ev.p.StateKey != nil {
		after[stateres.StateKey{Type: ev.p.Type, StateKey: *ev.p.StateKey}] = ev.id
	}
	fetch := func(ctx context.Context, ids []id.EventID) ([]*pdu.PDU, error) {
		out := make([]*pdu.PDU, 0, len(ids))
		rest := make([]id.EventID, 0, len(ids))
		for _, i := range ids {
			if i == ev.id {
				out = append(out, ev.p)
			} else {
				rest = append(rest, i)
			}
		}
		evs, err := s.store.GetEvents(ctx, rest)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			p, err := parseStored(r.version, e)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, nil
	}
	resolved, err := stateres.Resolve(ctx, stateResVersion(r.version), []stateres.StateMap{cur, after}, fetch)
	if err != nil {
		return nil, err
	}
	out := make(map[storage.StateKeyTuple]id.EventID, len(resolved))
	for k, v := range resolved {
		out[storage.StateKeyTuple{Type: k.Type, StateKey: k.StateKey}] = v
	}
	return out, nil
}

// authorizeAgainst runs the auth rules on p with the auth events selected from a state.
func (s *Server) authorizeAgainst(v id.RoomVersion, p *pdu.PDU, state func(t, k string) *pdu.PDU) error {
	auth := []*pdu.PDU{}
	for _, k := range p.AuthEventSelection(v) {
		if e := state(k.Type, k.StateKey); e != nil {
			auth = append(auth, e)
		}
	}
	getEvents := func(ids []id.EventID) ([]*pdu.PDU, error) {
		// Room v12: the create event, looked up by ID.
		if c := state(event.StateCreate.Type, ""); c != nil && len(ids) == 1 {
			return []*pdu.PDU{c}, nil
		}
		return nil, nil
	}
	return authrules.Authorize(v, p, auth, getEvents, s.getKey)
}

// extremityRefs returns the reference hashes of the extremities ext of a
// v1/v2 room, ev among them (nil for other room versions).
func extremityRefs(old map[id.EventID][]byte, ext []id.EventID, ev *remoteEvent) map[id.EventID][]byte {
	if ev.ref == nil {
		return old
	}
	out := make(map[id.EventID][]byte, len(ext))
	for _, e := range ext {
		if e == ev.id {
			out[e] = ev.ref
		} else if ref, ok := old[e]; ok {
			out[e] = ref
		}
	}
	return out
}

func sameSet(a, b []id.EventID) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// strippedForInvite are the state types sent with an invite (invite_room_state).
var strippedForInvite = []string{"m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar", "m.room.canonical_alias", "m.room.encryption", "m.room.topic"}

// inviteRemote sends a freshly built invite of a remote user to their server
// (invite v2), which countersigns it; the countersigned event replaces ne's JSON.
func (s *Server) inviteRemote(ctx context.Context, w *working, ne *storage.NewEvent, target id.UserID) error {
	if s.remote == nil {
		return fmt.Errorf("%w: federation is disabled", ErrForbidden)
	}
	stripped := []jsontext.Value{}
	for _, t := range strippedForInvite {
		if e, ok := w.get(t, ""); ok {
			b, err := json.Marshal(map[string]any{"type": e.pdu.Type, "state_key": "", "sender": e.pdu.Sender, "content": e.pdu.Content})
			if err == nil {
				stripped = append(stripped, b)
			}
		}
	}
	signed, err := s.remote.Invite(ctx, target.Homeserver(), w.roomID, ne.EventID, w.version, ne.JSON, stripped)
	if err != nil {
		return fmt.Errorf("%w: invite to %s: %v", ErrRemote, target.Homeserver(), err)
	}
	if isV1(w.version) {
		var e pdu.RoomV1PDU
		if err := json.Unmarshal(signed, &e); err != nil {
			return fmt.Errorf("%w: invite response: %v", ErrRemote, err)
		}
		e.Unsigned = nil
		if ref, err := e.GetReferenceHash(w.version); err != nil || e.EventID != ne.EventID || !bytes.Equal(ref[:], w.refs[ne.EventID]) {
			return fmt.Errorf("%w: invite came back as a different event", ErrRemote)
		}
		if err := e.VerifySignature(w.version, target.Homeserver(), s.getKey); err != nil {
			return fmt.Errorf("%w: invite not signed by %s: %v", ErrRemote, target.Homeserver(), err)
		}
		ne.JSON, err = json.Marshal(&e)
		return err
	}
	if err := checkCanonical(w.version, signed); err != nil {
		return fmt.Errorf("invite response from %s: %w", target.Homeserver(), err)
	}
	p, err := parsePDU(signed)
	if err != nil {
		return fmt.Errorf("%w: invite response: %v", ErrRemote, err)
	}
	if evID, err := p.GetEventID(w.version); err != nil || evID != ne.EventID {
		return fmt.Errorf("%w: invite came back as a different event", ErrRemote)
	}
	if err := p.VerifySignature(w.version, target.Homeserver(), s.getKey); err != nil {
		return fmt.Errorf("%w: invite not signed by %s: %v", ErrRemote, target.Homeserver(), err)
	}
	if ne.JSON, err = json.Marshal(p); err != nil {
		return err
	}
	return nil
}

// inputFork stores an accepted event whose prev_events are not the room's
// forward extremities. The room's current state becomes the state
// resolution of the current state and the state after the event; the
// roomserver cache is updated to match. r must be locked.
func (s *Server) inputFork(ctx context.Context, r *room, ev *remoteEvent, ne *storage.NewEvent, before map[storage.StateKeyTuple]id.EventID) error {
	resolved, err := s.resolveFork(ctx, r, ev, before)
	if err != nil {
		return fmt.Errorf("resolve state at fork: %w", err)
	}
	p := ev.p
	initial := make(map[storage.StateKeyTuple]id.EventID, len(resolved))
	for k, v := range resolved {
		initial[k] = v
	}
	if p.StateKey != nil {
		k := storage.StateKeyTuple{Type: p.Type, StateKey: *p.StateKey}
		if resolved[k] == ev.id {
			// The event itself becomes current: the state before it is the
			// resolution with the previous holder of its key.
			if prev, ok := r.state[k]; ok {
				initial[k] = prev.id
				ne.Unsigned = prevUnsigned(prev)
			} else {
				delete(initial, k)
			}
			ne.UpdateCurrentState = true
		}
	}
	ext := slices.DeleteFunc(slices.Clone(r.extremities), func(e id.EventID) bool { return slices.Contains(p.PrevEvents, e) })
	ext = append(ext, ev.id)
	req := storage.StoreEventsRequest{RoomID: r.id, Events: []*storage.NewEvent{ne}, InitialState: initial, ExpectExtremities: r.extremities}
	if req.ExpectExtremities == nil {
		req.ExpectExtremities = []id.EventID{}
	}
	stored, err := s.store.StoreEvents(ctx, req)
	if err != nil {
		s.forget(r)
		return fmt.Errorf("store %s: %w", ev.id, err)
	}
	// Update the cache to the resolved state.
	var changed []id.EventID
	for k, v := range resolved {
		if e, ok := r.state[k]; (!ok || e.id != v) && v != ev.id {
			changed = append(changed, v)
		}
	}
	evs, err := s.store.GetEvents(ctx, changed)
	if err != nil {
		s.forget(r)
		return err
	}
	before0 := len(r.state)
	for _, e := range evs {
		pp, ref, err := parseEvent(r.version, e.JSON)
		if err != nil {
			s.forget(r)
			return err
		}
		pp.InternalMeta.EventID = e.EventID
		r.state[storage.StateKeyTuple{Type: e.Type, StateKey: *e.StateKey}] = stateEntry{id: e.EventID, pdu: pp, ref: ref}
	}
	if p.StateKey != nil && ne.UpdateCurrentState {
		r.state[storage.StateKeyTuple{Type: p.Type, StateKey: *p.StateKey}] = stateEntry{id: ev.id, pdu: p, ref: ev.ref}
	}
	r.servers.invalidate() // resolution may have changed memberships
	r.stateVer = s.stateVers.Add(1)
	r.refs = extremityRefs(r.refs, ext, ev)
	s.cachedState.Add(int64(len(r.state) - before0))
	r.extremities = ext
	r.depth = max(r.depth, p.Depth)
	out := ne.Event
	out.StreamPos, out.StateBefore, out.StateAfter = stored[0].StreamPos, stored[0].StateBefore, stored[0].StateAfter
	for {
		cur := s.lastPos.Load()
		if out.StreamPos <= cur || s.lastPos.CompareAndSwap(cur, out.StreamPos) {
			break
		}
	}
	s.log.Debug("fork resolved", logging.RoomID(r.id), logging.EventID(ev.id), zap.Int("changed", len(changed)))
	s.publish([]*storage.Event{&out}, r.version)
	return nil
}

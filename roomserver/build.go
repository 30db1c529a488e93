package roomserver

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"parley/internal/authrules"
	"parley/internal/eventutil"
	"parley/internal/logging"
	"parley/storage"
)

// maxEventBytes is the spec's limit on a PDU's size.
const maxEventBytes = 65536

// working is a room's state while a batch of local events is built on it.
// Nothing in the room cache changes until the batch is committed, so a
// rejected event or failed write changes nothing.
type working struct {
	r           *room
	roomID      id.RoomID
	version     id.RoomVersion
	overlay     map[storage.StateKeyTuple]stateEntry
	extremities []id.EventID
	refs        map[id.EventID][]byte
	depth       int64
	events      []*storage.NewEvent
	pdus        []*pdu.PDU
	// committed holds the stored events once commit succeeded, for publishing.
	committed []*storage.Event
	// evaluated and notes are, per committed event, whether Deps.Notifications
	// handled it and the notifications stored with it.
	evaluated []bool
	notes     [][]storage.Notification
}

func newWorking(r *room) *working {
	return &working{r: r, roomID: r.id, version: r.version, overlay: map[storage.StateKeyTuple]stateEntry{},
		extremities: r.extremities, refs: r.refs, depth: r.depth}
}

func (w *working) get(evType, stateKey string) (stateEntry, bool) {
	k := storage.StateKeyTuple{Type: evType, StateKey: stateKey}
	if e, ok := w.overlay[k]; ok {
		return e, true
	}
	if w.r == nil {
		return stateEntry{}, false
	}
	e, ok := w.r.state[k]
	return e, ok
}

// getByID finds a current state event by ID (eventauth fetches the v12 create event this way).
func (w *working) getByID(evID id.EventID) *pdu.PDU {
	for _, e := range w.overlay {
		if e.id == evID {
			return e.pdu
		}
	}
	if w.r != nil {
		for _, e := range w.r.state {
			if e.id == evID {
				return e.pdu
			}
		}
	}
	return nil
}

// membership returns user's membership in the working state ("leave" if none).
func (w *working) membership(user id.UserID) event.Membership {
	e, ok := w.get(event.StateMember.Type, string(user))
	if !ok {
		return event.MembershipLeave
	}
	return event.Membership(gjson.GetBytes(e.pdu.Content, "membership").Str)
}

// eventSpec is one local event to build.
type eventSpec struct {
	Sender   id.UserID
	Type     string
	StateKey *string
	Content  []byte
	Redacts  id.EventID
	TxnID    string
	TxnScope string
	DeviceID id.DeviceID
	// OriginTS overrides origin_server_ts when set.
	OriginTS int64
}

// ownKey answers key lookups for this server's key, and defers to Deps.Keys for others.
func (s *Server) getKey(serverName string, keyID id.KeyID, minValidUntil time.Time) (id.SigningKey, time.Time, error) {
	if serverName == s.serverName && keyID == s.key.ID {
		return s.key.Pub, time.Now().Add(24 * time.Hour), nil
	}
	if s.keys != nil {
		return s.keys(serverName, keyID, minValidUntil)
	}
	return "", time.Time{}, nil
}

// add builds, signs and authorises one event on top of w, and applies it to w.
// Checks on receipt, step 5 (server-server API): the event must pass the auth
// rules based on the state before it (for local events: the current state).
func (s *Server) add(w *working, spec eventSpec) (*storage.NewEvent, error) {
	content := spec.Content
	if len(content) == 0 {
		content = []byte("{}")
	}
	if !gjson.ValidBytes(content) || bytes.TrimSpace(content)[0] != '{' {
		return nil, fmt.Errorf("%w: content must be a JSON object", ErrBadRequest)
	}
	p := &pdu.PDU{
		RoomID:         w.roomID,
		Sender:         spec.Sender,
		Type:           spec.Type,
		StateKey:       spec.StateKey,
		Content:        jsontext.Value(content),
		OriginServerTS: cmp.Or(spec.OriginTS, nowMS()),
		PrevEvents:     append([]id.EventID{}, w.extremities...),
		Depth:          w.depth + 1,
		AuthEvents:     []id.EventID{},
	}
	if spec.Type == event.StateCreate.Type && spec.StateKey != nil && w.version.RoomIDIsCreateEventID() {
		p.RoomID = ""
	}
	if spec.Redacts != "" {
		r := spec.Redacts
		p.Redacts = &r
	}
	authPDUs := []*pdu.PDU{}
	var authEntries []stateEntry
	for _, k := range p.AuthEventSelection(w.version) {
		if e, ok := w.get(k.Type, k.StateKey); ok {
			p.AuthEvents = append(p.AuthEvents, e.id)
			authPDUs = append(authPDUs, e.pdu)
			authEntries = append(authEntries, e)
		}
	}
	var evID id.EventID
	var raw, ref []byte
	var err error
	if isV1(w.version) {
		if evID, raw, ref, err = s.buildV1(w, p, authEntries); err != nil {
			return nil, err
		}
	} else {
		if err := p.Sign(w.version, s.serverName, s.key.ID, s.key.Priv); err != nil {
			return nil, fmt.Errorf("%w: event is not valid canonical JSON (floats and integers outside ±(2^53-1) are not allowed): %v", ErrBadRequest, err)
		}
		if evID, err = p.GetEventID(w.version); err != nil {
			return nil, fmt.Errorf("event id: %w", err)
		}
	}
	getEvents := func(ids []id.EventID) ([]*pdu.PDU, error) {
		out := make([]*pdu.PDU, 0, len(ids))
		for _, i := range ids {
			if e := w.getByID(i); e != nil {
				out = append(out, e)
			}
		}
		return out, nil
	}
	if err := authrules.Authorize(w.version, p, authPDUs, getEvents, s.getKey); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrForbidden, err)
	}
	if raw == nil {
		if raw, err = json.Marshal(p); err != nil {
			return nil, err
		}
	}
	if len(raw) > maxEventBytes {
		return nil, fmt.Errorf("%w: event is larger than %d bytes", ErrTooLarge, maxEventBytes)
	}
	if w.roomID == "" {
		// Room v12: the room ID is derived from the create event.
		rid, err := p.GetRoomID()
		if err != nil {
			return nil, err
		}
		w.roomID = rid
	}
	ne := &storage.NewEvent{
		Event: storage.Event{
			EventID: evID, RoomID: w.roomID, Type: p.Type, StateKey: p.StateKey, Sender: p.Sender, Depth: p.Depth,
			OriginTS: p.OriginServerTS, JSON: raw, TxnID: spec.TxnID, TxnScope: spec.TxnScope, DeviceID: spec.DeviceID,
		},
		PrevEvents:         p.PrevEvents,
		UpdateCurrentState: true,
	}
	if p.Type == event.StateMember.Type {
		ne.Membership = gjson.GetBytes(content, "membership").Str
	}
	if p.StateKey != nil {
		if prev, ok := w.get(p.Type, *p.StateKey); ok {
			ne.Unsigned = prevUnsigned(prev)
		}
		w.overlay[storage.StateKeyTuple{Type: p.Type, StateKey: *p.StateKey}] = stateEntry{id: evID, pdu: p, ref: ref}
	}
	w.extremities = []id.EventID{evID}
	if ref != nil {
		w.refs = map[id.EventID][]byte{evID: ref}
	}
	w.depth = p.Depth
	w.events = append(w.events, ne)
	w.pdus = append(w.pdus, p)
	return ne, nil
}

// ErrTooLarge: an event exceeds the size limit.
var ErrTooLarge = errors.New("event too large")

func prevUnsigned(prev stateEntry) []byte {
	b := make([]byte, 0, 64+len(prev.pdu.Content))
	b = append(b, `{"prev_content":`...)
	b = append(b, prev.pdu.Content...)
	b = append(b, `,"prev_sender":`...)
	b = eventutil.AppendString(b, string(prev.pdu.Sender))
	b = append(b, `,"replaces_state":`...)
	b = eventutil.AppendString(b, string(prev.id))
	return append(b, '}')
}

// commit persists w's events in one transaction, updates the room cache and
// publishes them. r must be locked (nil for a new room, which is then cached).
func (s *Server) commit(ctx context.Context, w *working, newRoom *storage.Room) ([]*storage.Event, error) {
	req := storage.StoreEventsRequest{RoomID: w.roomID, NewRoom: newRoom, Events: w.events}
	evaluated := make([]bool, len(w.events))
	if s.notifs != nil {
		for i, ne := range w.events {
			ne.Notifications = nil
			if ne.Rejected || ne.Outlier || ne.SoftFailed {
				continue
			}
			var ver uint64
			if w.r != nil {
				ver = w.r.stateVer
			}
			ne.Notifications, evaluated[i] = s.notifs(ctx, &ne.Event, ver)
		}
	}
	if w.r != nil {
		req.ExpectExtremities = w.r.extremities
		if req.ExpectExtremities == nil {
			req.ExpectExtremities = []id.EventID{}
		}
	}
	stored, err := s.store.StoreEvents(ctx, req)
	if err != nil {
		if w.r != nil && !errors.Is(err, storage.ErrConflict) {
			// The write may or may not have happened (commit errors): reload
			// next time. A conflict rolled it back, leaving the cache right.
			s.forget(w.r)
		}
		return nil, fmt.Errorf("store events: %w", err)
	}
	r := w.r
	if r == nil {
		r = &room{id: w.roomID, version: w.version, state: map[storage.StateKeyTuple]stateEntry{}}
		s.mu.Lock()
		s.evictLocked()
		s.rooms[w.roomID] = r
		s.mu.Unlock()
	}
	before := len(r.state)
	if len(w.overlay) > 0 {
		r.stateVer = s.stateVers.Add(1)
	}
	for k, e := range w.overlay {
		if k.Type == event.StateMember.Type {
			r.servers.invalidate()
		}
		r.state[k] = e
	}
	s.cachedState.Add(int64(len(r.state) - before))
	r.extremities = w.extremities
	r.refs = w.refs
	r.depth = w.depth
	out := make([]*storage.Event, len(w.events))
	for i, ne := range w.events {
		ev := ne.Event
		ev.StreamPos, ev.StateBefore, ev.StateAfter = stored[i].StreamPos, stored[i].StateBefore, stored[i].StateAfter
		out[i] = &ev
	}
	w.evaluated = evaluated
	w.notes = make([][]storage.Notification, len(w.events))
	for i, ne := range w.events {
		w.notes[i] = ne.Notifications
	}
	if n := len(out); n > 0 {
		for {
			cur := s.lastPos.Load()
			if out[n-1].StreamPos <= cur || s.lastPos.CompareAndSwap(cur, out[n-1].StreamPos) {
				break
			}
		}
	}
	w.committed = out
	if ce := s.log.Check(zap.DebugLevel, "events persisted"); ce != nil {
		ce.Write(logging.RoomID(w.roomID), logging.EventID(out[len(out)-1].EventID))
	}
	return out, nil
}

// publish hands committed events to the subscriber.
func (s *Server) publish(evs []*storage.Event, v id.RoomVersion) {
	for _, ev := range evs {
		s.emit(OutputEvent{Event: ev, Version: v})
	}
}

// publishRelayed hands over a membership event that a resident server
// accepted and relays to the room's other servers (OutputEvent.Relayed).
func (s *Server) publishRelayed(ev *storage.Event, v id.RoomVersion) {
	s.emit(OutputEvent{Event: ev, Version: v, Relayed: true})
}

// publishWorking hands w's committed events to the subscriber, with the
// notifications stored alongside them.
func (s *Server) publishWorking(w *working) {
	for i, ev := range w.committed {
		out := OutputEvent{Event: ev, Version: w.version}
		if i < len(w.evaluated) && w.evaluated[i] {
			out.PushEvaluated, out.Notifications = true, w.notes[i]
		}
		s.emit(out)
	}
}

// Drain waits until no write is publishing committed events (for shutdown).
func (s *Server) Drain() {
	s.mu.Lock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	for _, r := range rooms {
		r.pubMu.Lock()
		r.pubMu.Unlock() // waiting for the current holder is the point
	}
}

// Send builds, authorises and persists one local event, idempotently per
// device and transaction ID. It returns the event ID.
//
// A repeated transaction is found by the write itself: the transaction ID is
// stored with the event, unique per device and endpoint, so a second write
// fails with a conflict and the first event's ID is answered (as it is when
// a retry fails otherwise). The common, first send reads nothing for it.
func (s *Server) Send(ctx context.Context, req SendRequest) (id.EventID, error) {
	scope := req.txnScope()
	evID, err := s.inRoom(ctx, req.RoomID, func(w *working) (id.EventID, error) {
		spec := eventSpec{Sender: req.Sender, Type: req.Type, StateKey: req.StateKey, Content: req.Content, Redacts: req.Redacts, TxnID: req.TxnID, TxnScope: scope, DeviceID: req.DeviceID, OriginTS: req.OriginTS}
		if req.Type == event.EventRedaction.Type && req.Redacts != "" {
			return s.redact(ctx, w, spec)
		}
		if req.StateKey != nil {
			if err := s.checkStateEvent(w, req.Sender, req.Type, *req.StateKey, req.Content); err != nil {
				return "", err
			}
			// Setting the same state again (same sender and content) sends nothing, as in Synapse.
			if cur, ok := w.get(req.Type, *req.StateKey); ok && cur.pdu.Sender == req.Sender && sameJSON(cur.pdu.Content, req.Content) {
				return cur.id, nil
			}
		}
		ne, err := s.add(w, spec)
		if err != nil {
			return "", err
		}
		if _, err := s.commit(ctx, w, nil); err != nil {
			return "", err
		}
		return ne.EventID, nil
	})
	if req.TxnID != "" && err != nil {
		// A conflict, or a retry the room would now refuse (the sender left,
		// say): the transaction may have been sent already.
		if first, lookupErr := s.store.EventByTxnID(ctx, req.Sender, req.DeviceID, scope, req.TxnID); lookupErr == nil {
			return first, nil
		}
	}
	return evID, err
}

// inRoom runs fn on a working copy of the room's current state, holding the
// room's write lock. When the write finds that another process changed the
// room meanwhile (storage.ErrStale), the room is reloaded and fn runs once more.
func (s *Server) inRoom(ctx context.Context, roomID id.RoomID, fn func(w *working) (id.EventID, error)) (id.EventID, error) {
	for attempt := 0; ; attempt++ {
		r, err := s.lockRoom(ctx, roomID)
		if err != nil {
			return "", err
		}
		w := newWorking(r)
		evID, err := fn(w)
		if w.committed != nil {
			// Publish outside the room lock, so that subscribers (push rules,
			// sync wake-ups) do not hold up the next write into the room, but
			// in commit order: the publish lock is taken before the room lock
			// is released, and the next writer publishes only after us. The
			// sender's response waits for the subscribers, so that it can read
			// what they wrote (notifications, unread counts).
			r.pubMu.Lock()
			r.mu.Unlock()
			s.publishWorking(w)
			r.pubMu.Unlock()
		} else {
			r.mu.Unlock()
		}
		if errors.Is(err, storage.ErrStale) && attempt < 2 {
			s.log.Info("room changed by another writer, retrying", logging.RoomID(roomID))
			continue
		}
		return evID, err
	}
}

// checkStateEvent applies the client-server API's extra checks on state sent by clients.
func (s *Server) checkStateEvent(w *working, sender id.UserID, evType, stateKey string, content []byte) error {
	switch evType {
	case event.StateCreate.Type:
		return fmt.Errorf("%w: cannot send m.room.create into an existing room", ErrBadRequest)
	case event.StateMember.Type:
		return fmt.Errorf("%w: use the membership endpoints to change m.room.member", ErrBadRequest)
	case event.StateCanonicalAlias.Type:
		var c struct {
			Alias      id.RoomAlias   `json:"alias"`
			AltAliases []id.RoomAlias `json:"alt_aliases"`
		}
		if err := json.Unmarshal(content, &c, json.RejectUnknownMembers(false)); err != nil {
			return fmt.Errorf("%w: invalid m.room.canonical_alias content", ErrBadRequest)
		}
		for _, a := range append([]id.RoomAlias{c.Alias}, c.AltAliases...) {
			if a == "" {
				continue
			}
			sigil, local, server := id.ParseCommonIdentifier(a)
			if sigil != '#' || local == "" || server == "" {
				return fmt.Errorf("%w: invalid alias %s", ErrInvalidParam, a)
			}
			if server != s.serverName {
				continue
			}
			rid, _, err := s.store.ResolveAlias(context.Background(), a)
			if err != nil || rid != w.roomID {
				return fmt.Errorf("%w: %s does not point to this room", ErrBadAlias, a)
			}
		}
	}
	return nil
}

// sameJSON reports whether two JSON values are equal in canonical form.
func sameJSON(a, b []byte) bool {
	ca, err1 := canonicaljson.CanonicalJSON(a)
	cb, err2 := canonicaljson.CanonicalJSON(b)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

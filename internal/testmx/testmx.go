// Package testmx builds signed Matrix PDU DAGs for tests: rooms with
// prev_events, depth, auth_events (selected from the state before each event
// with mautrix's AuthEventSelection), content hashes, ed25519 signatures from a
// fixed seed and reference-hash event IDs.
//
// Room versions 1 and 2 get server-chosen event IDs ("$evN:server") in
// InternalMeta.EventID, with auth_events and prev_events as plain ID lists
// (the pdu.PDU shape); mautrix's eventauth only handles them when
// pdu.UseInternalMetaForGetEventID is set.
//
// Every event added is checked against its auth events with mautrix's
// eventauth; an event that fails fails the test unless it was added with
// Event.Rejected set, in which case it is marked rejected like a homeserver
// would on receipt.
package testmx

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// KeyID is the ID of the signing key every test server uses.
const KeyID = id.KeyID("ed25519:testmx")

// privateKey is derived from a constant seed so that event IDs are stable
// across runs.
var privateKey = ed25519.NewKeyFromSeed([]byte("parley testmx fixed ed25519 seed")[:ed25519.SeedSize])

// PublicKey is the public half of the key that signs every test event.
var PublicKey = id.SigningKey(base64Raw(privateKey.Public().(ed25519.PublicKey)))

// GetKey returns PublicKey for every server, for signature checks in tests.
func GetKey(string, id.KeyID, time.Time) (id.SigningKey, time.Time, error) {
	return PublicKey, time.Now().Add(24 * time.Hour), nil
}

// State is a room state: the event ID for each (type, state key).
type State = map[pdu.StateKey]id.EventID

// StartTS is the origin_server_ts of the create event; each following event
// gets the next millisecond unless Event.TS says otherwise.
const StartTS = int64(1_700_000_000_000)

// Room is a DAG of events under construction.
type Room struct {
	t       testing.TB
	Version id.RoomVersion
	ID      id.RoomID
	// Create is the ID of the m.room.create event.
	Create id.EventID
	// Last is the ID of the most recently added event.
	Last id.EventID
	// FetchCalls counts calls of Fetch.
	FetchCalls int

	events map[id.EventID]*pdu.PDU
	after  map[id.EventID]State
	ts     int64
}

// NewRoom starts a room of the given version created by creator. It adds only
// the m.room.create event; extra create content (such as additional_creators)
// may be passed in createContent.
func NewRoom(t testing.TB, version id.RoomVersion, creator id.UserID, createContent map[string]any) *Room {
	t.Helper()
	r := &Room{t: t, Version: version, events: make(map[id.EventID]*pdu.PDU), after: make(map[id.EventID]State), ts: StartTS}
	content := map[string]any{"room_version": string(version)}
	if version.CreatorInContent() {
		content["creator"] = creator.String()
	}
	maps.Copy(content, createContent)
	if !version.RoomIDIsCreateEventID() {
		r.ID = id.RoomID("!testroom:" + creator.Homeserver())
	}
	r.Create = r.Add(Event{Sender: creator, Type: event.StateCreate.Type, StateKey: new(""), Content: content, Prev: []id.EventID{}})
	if version.RoomIDIsCreateEventID() {
		r.ID = id.RoomID("!" + r.Create[1:])
	}
	return r
}

// Event describes an event to add.
type Event struct {
	Sender   id.UserID
	Type     string
	StateKey *string // nil for a message event
	Content  map[string]any
	// Prev lists prev_events. nil means the last added event; an empty
	// non-nil slice means none (only for the create event).
	Prev []id.EventID
	// TS overrides origin_server_ts when non-zero.
	TS int64
	// AuthState is the state the auth events are selected from. nil means
	// the state after Prev[0].
	AuthState State
	// Rejected adds the event even if it fails auth against its auth events
	// and marks it rejected (InternalMeta.Rejected), as a server does when an
	// event fails auth on receipt (including against the state before it).
	// The state after a rejected event is the state before it.
	Rejected bool
	// ExtraSigners are further server names that sign the event (with the
	// same key), e.g. the authorising server of a restricted join.
	ExtraSigners []string
}

// Add signs and adds an event and returns its ID.
func (r *Room) Add(e Event) id.EventID {
	r.t.Helper()
	prev := e.Prev
	if prev == nil {
		prev = []id.EventID{r.Last}
	}
	before := e.AuthState
	if before == nil {
		before = State{}
		if len(prev) > 0 {
			before = r.After(prev[0])
		}
	}
	var depth int64
	for _, p := range prev {
		pe := r.Event(p)
		depth = max(depth, pe.Depth)
	}
	ts := e.TS
	if ts == 0 {
		ts = r.ts
		r.ts++
	}
	content, err := json.Marshal(e.Content)
	if err != nil {
		r.t.Fatalf("testmx: marshal content: %v", err)
	}
	ev := &pdu.PDU{
		Content:        content,
		Depth:          depth + 1,
		OriginServerTS: ts,
		PrevEvents:     slices.Clone(prev),
		RoomID:         r.ID,
		Sender:         e.Sender,
		StateKey:       e.StateKey,
		Type:           e.Type,
		AuthEvents:     []id.EventID{},
	}
	if e.Type == event.StateCreate.Type && r.Version.RoomIDIsCreateEventID() {
		ev.RoomID = ""
	}
	for _, key := range ev.AuthEventSelection(r.Version) {
		if a, ok := before[key]; ok {
			ev.AuthEvents = append(ev.AuthEvents, a)
		}
	}
	for _, server := range append([]string{e.Sender.Homeserver()}, e.ExtraSigners...) {
		if err := ev.Sign(r.Version, server, KeyID, privateKey); err != nil {
			r.t.Fatalf("testmx: sign: %v", err)
		}
	}
	var evID id.EventID
	if r.Version.EventIDFormat() == id.EventIDFormatCustom {
		// Room versions 1 and 2: the sending server picks the event ID.
		evID = id.EventID(fmt.Sprintf("$ev%d:%s", len(r.events), e.Sender.Homeserver()))
	} else if evID, err = ev.GetEventID(r.Version); err != nil {
		r.t.Fatalf("testmx: event ID: %v", err)
	}
	ev.InternalMeta.EventID = evID
	authErr := eventauth.Authorize(r.Version, ev, nil, r.getEvents, GetKey)
	if authErr != nil && !e.Rejected {
		r.t.Fatalf("testmx: %s %s by %s fails auth: %v", e.Type, ptrStr(e.StateKey), e.Sender, authErr)
	}
	ev.InternalMeta.Rejected = e.Rejected
	r.events[evID] = ev
	after := maps.Clone(before)
	if ev.StateKey != nil && !e.Rejected {
		after[pdu.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = evID
	}
	r.after[evID] = after
	r.Last = evID
	return evID
}

// State adds a state event whose only prev event is prev (the last added
// event if prev is empty) and returns its ID.
func (r *Room) State(prev id.EventID, sender id.UserID, evType, stateKey string, content map[string]any) id.EventID {
	r.t.Helper()
	var prevs []id.EventID
	if prev != "" {
		prevs = []id.EventID{prev}
	}
	return r.Add(Event{Sender: sender, Type: evType, StateKey: &stateKey, Content: content, Prev: prevs})
}

// Member adds an m.room.member event for target after prev.
func (r *Room) Member(prev id.EventID, sender, target id.UserID, membership event.Membership) id.EventID {
	r.t.Helper()
	return r.State(prev, sender, event.StateMember.Type, target.String(), map[string]any{"membership": string(membership)})
}

// Event returns the event with the given ID; it fails the test if unknown.
func (r *Room) Event(evID id.EventID) *pdu.PDU {
	r.t.Helper()
	ev, ok := r.events[evID]
	if !ok {
		r.t.Fatalf("testmx: unknown event %s", evID)
	}
	return ev
}

// After returns a copy of the state after the event.
func (r *Room) After(evID id.EventID) State {
	r.t.Helper()
	s, ok := r.after[evID]
	if !ok {
		r.t.Fatalf("testmx: unknown event %s", evID)
	}
	return maps.Clone(s)
}

// SetAfter overrides the state after an event, for instance after a merge
// event whose state the test resolved itself.
func (r *Room) SetAfter(evID id.EventID, s State) { r.after[evID] = maps.Clone(s) }

// Remove forgets an event, so that Fetch no longer returns it.
func (r *Room) Remove(evID id.EventID) { delete(r.events, evID) }

// Fetch returns the known events among ids; it matches stateres.FetchFunc.
func (r *Room) Fetch(_ context.Context, ids []id.EventID) ([]*pdu.PDU, error) {
	r.FetchCalls++
	return r.getEvents(ids)
}

// NumEvents returns how many events the room holds.
func (r *Room) NumEvents() int { return len(r.events) }

func (r *Room) getEvents(ids []id.EventID) ([]*pdu.PDU, error) {
	out := make([]*pdu.PDU, 0, len(ids))
	for _, evID := range ids {
		if ev, ok := r.events[evID]; ok {
			out = append(out, ev)
		}
	}
	return out, nil
}

func ptrStr(s *string) string {
	if s == nil {
		return "<message>"
	}
	return *s
}

func base64Raw(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

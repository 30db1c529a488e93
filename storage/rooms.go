package storage

import (
	"context"
	"errors"

	"maunium.net/go/mautrix/id"
)

// Event is a stored room event. JSON is the signed PDU exactly as it is sent
// over federation (its redacted form once redacted); every other field is an
// index over it or server-side metadata.
type Event struct {
	// StreamPos is the global order in which events were persisted; it is the
	// /sync PDU stream position.
	StreamPos int64
	EventID   id.EventID
	RoomID    id.RoomID
	Type      string
	StateKey  *string
	Sender    id.UserID
	Depth     int64
	OriginTS  int64
	// Membership is content.membership of m.room.member events, else "".
	Membership string
	JSON       []byte
	// Unsigned is a JSON object of server-computed unsigned fields
	// (prev_content, prev_sender, replaces_state, redacted_because), or empty.
	Unsigned []byte
	TxnID    string
	DeviceID id.DeviceID
	// TxnScope is the endpoint TxnID was sent to (spec: a transaction ID is
	// scoped to a device and an endpoint); kept only in the transaction index.
	TxnScope   string
	Rejected   bool
	Outlier    bool
	SoftFailed bool
	Redacted   bool
	// StateBefore and StateAfter are state groups: the room state before and
	// after the event (equal for non-state events).
	StateBefore int64
	StateAfter  int64
}

// StateKeyTuple is a (type, state_key) pair.
type StateKeyTuple struct {
	Type     string
	StateKey string
}

// NewEvent is an event to persist.
type NewEvent struct {
	Event
	// PrevEvents are the event's prev_events (stored as DAG edges).
	PrevEvents []id.EventID
	// Redacts, when set on an accepted m.room.redaction, names the event whose
	// stored JSON is replaced with RedactedJSON.
	Redacts      id.EventID
	RedactedJSON []byte
	// RedactedUnsigned replaces the redacted event's Unsigned (it carries redacted_because).
	RedactedUnsigned []byte
	// UpdateCurrentState makes an accepted state event part of the room's current
	// state (a linear local DAG). Events from forks set it after state resolution.
	UpdateCurrentState bool
	// Notifications are stored in the same transaction as the event, with
	// EventPos set to the stream position the event is given (born unread).
	Notifications []Notification
}

// StoreEventsRequest persists events of one room in one transaction.
type StoreEventsRequest struct {
	RoomID id.RoomID
	// NewRoom creates the room row (with the first event, the create event).
	NewRoom *Room
	// Events are persisted in order. The state before the first one is the
	// room's current state group; each next event's state before is the state
	// after the previous one. State events get a new state group.
	Events []*NewEvent
	// ExpectExtremities, when non-nil, makes the write fail with ErrStale
	// unless the room's forward extremities are exactly these event IDs. The
	// roomserver builds on a cached view of the room; this catches another
	// process (PostgreSQL deployments) having written to the room meanwhile.
	ExpectExtremities []id.EventID
	// InitialState, when set, becomes the room's state (a full snapshot, and
	// the current state) before the first event that is not an outlier; the
	// events it names must be stored already or be outliers of this request.
	// Joining a room on another server uses it for the state from send_join.
	InitialState map[StateKeyTuple]id.EventID
}

// ErrStale is returned when a write was built on an outdated view of a room.
var ErrStale = errors.New("room changed concurrently")

// StoredEvent is what StoreEvents assigned to one event.
type StoredEvent struct {
	StreamPos   int64
	StateBefore int64
	StateAfter  int64
}

// Room is a room row.
type Room struct {
	RoomID       id.RoomID
	Version      id.RoomVersion
	Creator      id.UserID
	CreatedTS    int64
	CurrentGroup int64
	IsPublic     bool
}

// Membership is a user's current membership in a room.
type Membership struct {
	RoomID     id.RoomID
	UserID     id.UserID
	Membership string
	EventID    id.EventID
	StreamPos  int64
}

// PosValue is a value of a state tuple from a stream position on.
type PosValue struct {
	StreamPos int64
	Value     string
}

// RoomStore stores rooms, the event DAG and room state.
type RoomStore interface {
	// StoreEvents persists events as described in StoreEventsRequest.
	StoreEvents(ctx context.Context, req StoreEventsRequest) ([]StoredEvent, error)
	// StoreBackfill persists historical events of a room fetched from another
	// server (backfill), given newest first. Each gets the next stream
	// position below every existing one (negative, decreasing), so that they
	// sort before all other events and no sync since a position ever returns
	// them. They change neither the current state nor the forward
	// extremities; their state before and after is group. An event already
	// stored as a (non-rejected) outlier becomes part of the timeline at its
	// new position; other known events are left alone (StreamPos 0 in the
	// result).
	StoreBackfill(ctx context.Context, roomID id.RoomID, events []*NewEvent, group int64) ([]StoredEvent, error)
	// EarliestEvent returns the room's accepted, non-outlier event with the
	// lowest stream position; ErrNotFound if none.
	EarliestEvent(ctx context.Context, roomID id.RoomID) (*Event, error)
	// GetRoom returns a room; ErrNotFound if unknown.
	GetRoom(ctx context.Context, roomID id.RoomID) (*Room, error)
	// SetRoomPublic sets the room's published state in the room directory.
	SetRoomPublic(ctx context.Context, roomID id.RoomID, public bool) error
	// ForwardExtremities returns the room's forward extremities.
	ForwardExtremities(ctx context.Context, roomID id.RoomID) ([]id.EventID, error)
	// GetEvents returns the events found among ids, in no particular order.
	GetEvents(ctx context.Context, ids []id.EventID) ([]*Event, error)
	// GetEvent returns one event; ErrNotFound if unknown.
	GetEvent(ctx context.Context, eventID id.EventID) (*Event, error)
	// EventByTxnID returns the event ID a device sent with a transaction ID to
	// an endpoint (scope); ErrNotFound if none.
	EventByTxnID(ctx context.Context, user id.UserID, device id.DeviceID, scope, txnID string) (id.EventID, error)
	// StateIDs returns a state group's state as event IDs.
	StateIDs(ctx context.Context, group int64) (map[StateKeyTuple]id.EventID, error)
	// StateEvents returns a state group's state events.
	StateEvents(ctx context.Context, group int64) ([]*Event, error)
	// CurrentState returns the current state events of a room.
	CurrentState(ctx context.Context, roomID id.RoomID) ([]*Event, error)
	// CurrentStateEvent returns one current state event; ErrNotFound if unset.
	CurrentStateEvent(ctx context.Context, roomID id.RoomID, evType, stateKey string) (*Event, error)
	// RoomEvents returns up to limit accepted, non-outlier events of a room with
	// from < stream_pos <= to, newest first when backwards, else oldest first.
	RoomEvents(ctx context.Context, roomID id.RoomID, from, to int64, limit int, backwards bool) ([]*Event, error)
	// LastEventAt returns the room's last accepted event with stream_pos <= pos; ErrNotFound if none.
	LastEventAt(ctx context.Context, roomID id.RoomID, pos int64) (*Event, error)
	// MaxStreamPos is the newest stream position.
	MaxStreamPos(ctx context.Context) (int64, error)
	// RoomsChangedBetween lists rooms with events in (from, to].
	RoomsChangedBetween(ctx context.Context, from, to int64) ([]id.RoomID, error)
	// UserMemberships returns the user's current membership of every room they have one in.
	UserMemberships(ctx context.Context, user id.UserID) ([]Membership, error)
	// UserMembershipsChanged returns the user's current membership of the
	// rooms with events in (from, to] (RoomsChangedBetween), in one query.
	UserMembershipsChanged(ctx context.Context, user id.UserID, from, to int64) ([]Membership, error)
	// RoomMemberships returns the current memberships of a room.
	RoomMemberships(ctx context.Context, roomID id.RoomID) ([]Membership, error)
	// LocalMemberships returns memberships of local users (server name suffix
	// ":"+serverName) with one of the given membership values.
	LocalMemberships(ctx context.Context, serverName string, memberships []string) ([]Membership, error)
	// StateHistory returns the values (memberships, or content field for other
	// types as extracted by the caller) of a state tuple through time, oldest first,
	// as (stream_pos, event JSON).
	StateHistory(ctx context.Context, roomID id.RoomID, evType, stateKey string) ([]*Event, error)
	// SenderHasEvents reports whether sender has accepted events in the room with after < stream_pos <= upto.
	SenderHasEvents(ctx context.Context, roomID id.RoomID, sender id.UserID, after, upto int64) (bool, error)
	// CreateAlias maps alias to room; ErrConflict if taken.
	CreateAlias(ctx context.Context, alias id.RoomAlias, roomID id.RoomID, creator id.UserID) error
	// ResolveAlias returns the alias's room and creator; ErrNotFound if unknown.
	ResolveAlias(ctx context.Context, alias id.RoomAlias) (id.RoomID, id.UserID, error)
	// DeleteAlias removes an alias; ErrNotFound if unknown.
	DeleteAlias(ctx context.Context, alias id.RoomAlias) error
	// RoomAliases lists a room's local aliases.
	RoomAliases(ctx context.Context, roomID id.RoomID) ([]id.RoomAlias, error)
	// MoveRoomDirectory hands a room's place in the directory to its
	// replacement (room upgrades), in one transaction: its local aliases
	// point to the new room, and the new room is published exactly when the
	// old one was, which is then unpublished. ErrNotFound if either room is unknown.
	MoveRoomDirectory(ctx context.Context, from, to id.RoomID) error
	// ForgetRoom records that user forgot room.
	ForgetRoom(ctx context.Context, user id.UserID, roomID id.RoomID) error
	// UnforgetRoom clears a forget (on rejoin).
	UnforgetRoom(ctx context.Context, user id.UserID, roomID id.RoomID) error
	// ForgottenRooms lists the rooms user forgot.
	ForgottenRooms(ctx context.Context, user id.UserID) (map[id.RoomID]bool, error)
}

// EventMutations is implemented by stores that count the writes changing or
// removing events already stored (redactions, purges, outliers moved into
// the stream), so that a cache of recent events knows when to start over.
type EventMutations interface {
	// EventsMutated increases whenever such a write is made.
	EventsMutated() uint64
}

package roomserver

import (
	"context"
	"encoding/json"
	"errors"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"parley/storage"
)

// Sentinel errors. Handlers map them to Matrix errcodes.
var (
	// ErrRoomNotFound: the room is unknown to this server.
	ErrRoomNotFound = errors.New("room not found")
	// ErrEventNotFound: the event is unknown, or not in the room.
	ErrEventNotFound = errors.New("event not found")
	// ErrForbidden: the request is not allowed (auth rules or access checks).
	// Errors wrapping it carry the reason.
	ErrForbidden = errors.New("forbidden")
	// ErrUnsupportedRoomVersion: the room version is unknown or not supported.
	ErrUnsupportedRoomVersion = errors.New("unsupported room version")
	// ErrBadRequest: the request is malformed. Errors wrapping it say why.
	ErrBadRequest = errors.New("bad request")
	// ErrRoomInUse: a requested alias is taken.
	ErrRoomInUse = errors.New("room alias in use")
	// ErrInvalidParam: a parameter is invalid. Errors wrapping it say which.
	ErrInvalidParam = errors.New("invalid parameter")
	// ErrInvalidRoomState: createRoom's parameters imply a state the auth rules reject.
	ErrInvalidRoomState = errors.New("invalid initial room state")
	// ErrGuestForbidden: a guest may not join the room (m.room.guest_access is not can_join).
	ErrGuestForbidden = errors.New("guest access forbidden")
	// ErrBadAlias: an alias does not point to the room it is used for.
	ErrBadAlias = errors.New("bad alias")
)

// OutputEvent is published to subscribers after an event is committed.
type OutputEvent struct {
	Event *storage.Event
	// Version is the room's version.
	Version id.RoomVersion
	// PushEvaluated is set when Deps.Notifications evaluated the event's push
	// rules and Notifications (EventPos set) were stored with the event.
	PushEvaluated bool
	Notifications []storage.Notification
	// Relayed is set for a local user's membership that a resident server
	// accepted through send_join, send_leave or send_knock: that server
	// hands it to the room's other servers, so federation does not send it.
	Relayed bool
}

// SendRequest asks the roomserver to build, sign, authorise and persist one local event.
type SendRequest struct {
	RoomID id.RoomID
	Sender id.UserID
	// DeviceID and TxnID make the request idempotent when TxnID is set.
	DeviceID id.DeviceID
	TxnID    string
	Type     string
	// StateKey is nil for message events.
	StateKey *string
	Content  json.RawMessage
	// Redacts is the target of an m.room.redaction.
	Redacts id.EventID
	// OriginTS, when set, is the event's origin_server_ts instead of now
	// (application services' timestamp massaging).
	OriginTS int64
}

// txnScope names the endpoint a transaction ID belongs to, as the request
// path does: the same ID sent to another room, event type or redaction
// target is a different request.
func (r SendRequest) txnScope() string {
	if r.Type == event.EventRedaction.Type && r.Redacts != "" {
		return "redact " + string(r.RoomID) + " " + string(r.Redacts)
	}
	return "send " + string(r.RoomID) + " " + r.Type
}

// MembershipRequest changes a user's membership.
type MembershipRequest struct {
	RoomID id.RoomID
	Sender id.UserID
	Target id.UserID
	Reason string
	// Extra is merged into the member event content (displayname, avatar_url, is_direct...).
	Extra map[string]any
	// DeviceID and TxnID are optional.
	DeviceID id.DeviceID
	TxnID    string
	// Guest is set when the sender is a guest account.
	Guest bool
	// Via are servers to join through when this server is not in the room.
	Via []string
	// OriginTS, when set, is the member event's origin_server_ts (as SendRequest's).
	OriginTS int64
}

// CreateRoomRequest is POST /createRoom, decoded.
type CreateRoomRequest struct {
	Creator                   id.UserID
	Visibility                string
	RoomAliasName             string
	Name                      *string
	Topic                     *string
	Invite                    []id.UserID
	CreationContent           map[string]json.RawMessage
	InitialState              []InitialStateEvent
	Preset                    string
	IsDirect                  bool
	RoomVersion               id.RoomVersion
	PowerLevelContentOverride map[string]json.RawMessage
	// StoreThirdPartyInvites, when set, is called once the new room's ID is
	// known and before anything is stored (invite_3pid: the identity server
	// stores the invitations); its invitations become m.room.third_party_invite
	// events after the invites. An error aborts the creation.
	StoreThirdPartyInvites func(ctx context.Context, roomID id.RoomID) ([]*ThirdPartyInvite, error)
	// roomID, when set, is the new room's ID (room versions whose IDs are
	// not derived from the create event): an upgrade names the new room in
	// the old room's tombstone before building it.
	roomID id.RoomID
}

// InitialStateEvent is one entry of createRoom's initial_state.
type InitialStateEvent struct {
	Type     string          `json:"type"`
	StateKey string          `json:"state_key"`
	Content  json.RawMessage `json:"content"`
}

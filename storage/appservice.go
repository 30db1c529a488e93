package storage

import (
	"context"
	"errors"

	"maunium.net/go/mautrix/id"
)

// ErrLeaseLost is returned to a process that no longer holds an application
// service's sender lease (another process took it over).
var ErrLeaseLost = errors.New("application service lease held by another process")

// AppServiceTopic is the change-feed topic announcing new application
// service queue items (and the cursor moving) to the other processes.
const AppServiceTopic = "appservice"

// Kinds of AppServiceItem.
const (
	AppServiceItemEvent     = "event"
	AppServiceItemEphemeral = "ephemeral"
)

// AppServiceItem is one thing queued for an application service.
type AppServiceItem struct {
	ID int64
	// Kind is AppServiceItemEvent (EventID names a room event, formatted when
	// sent) or AppServiceItemEphemeral (Payload is the ephemeral event's JSON).
	Kind    string
	EventID id.EventID
	Payload []byte
}

// AppServiceTxn is a transaction owed to an application service: its ID and
// its items in queue order. Once opened, a transaction keeps its ID and items
// until it is delivered, across failures and restarts.
type AppServiceTxn struct {
	TxnID int64
	Items []AppServiceItem
}

// AppServiceStore persists what the homeserver owes application services:
// per service an event cursor, a queue and the last transaction ID, and a
// lease naming the one process that sends its transactions.
type AppServiceStore interface {
	// ClaimAppService takes asID's sender lease for owner until the time until
	// (ms), or extends owner's lease; false while another owner's lease lasts
	// past now. The first claim ever of a service starts its event cursor at
	// cursor: earlier events are never sent to it.
	ClaimAppService(ctx context.Context, asID, owner string, now, until, cursor int64) (bool, error)
	// ReleaseAppService ends owner's lease, so another process may take over at once.
	ReleaseAppService(ctx context.Context, asID, owner string) error
	// AppServiceCursor is the stream position up to which asID's room events
	// were looked at; ErrNotFound before the first claim.
	AppServiceCursor(ctx context.Context, asID string) (int64, error)
	// TimelineEventsAfter returns up to limit accepted timeline events (not
	// outliers, rejected or soft-failed) of every room with stream_pos > from,
	// oldest first.
	TimelineEventsAfter(ctx context.Context, from int64, limit int) ([]*Event, error)
	// QueueAppServiceEvents appends events to asID's queue and moves its
	// cursor to cursor, in one transaction; ErrLeaseLost unless owner holds
	// the lease.
	QueueAppServiceEvents(ctx context.Context, asID, owner string, events []id.EventID, cursor int64) error
	// QueueAppServiceEphemeral appends ephemeral events (JSON) to the queues
	// of the services named by the map's keys.
	QueueAppServiceEphemeral(ctx context.Context, items map[string][][]byte) error
	// NextAppServiceTxn returns asID's oldest undelivered transaction. When
	// none is open it opens one: up to limit of the oldest queued items get the
	// next transaction ID. Nil when nothing is queued; ErrLeaseLost unless
	// owner holds the lease.
	NextAppServiceTxn(ctx context.Context, asID, owner string, limit int) (*AppServiceTxn, error)
	// CompleteAppServiceTxn removes a delivered transaction's items.
	CompleteAppServiceTxn(ctx context.Context, asID string, txnID int64) error
	// SetAppServiceRoomPublic adds room to (or removes it from) the room
	// directory of asID's network networkID.
	SetAppServiceRoomPublic(ctx context.Context, asID, networkID string, room id.RoomID, public bool) error
	// AppServicePublicRooms lists the rooms of one network's directory, or of
	// every application service network when asID is "".
	AppServicePublicRooms(ctx context.Context, asID, networkID string) ([]id.RoomID, error)
}

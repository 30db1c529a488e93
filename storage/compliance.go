package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// Hold is a compliance hold on a room or on a user's events.
type Hold struct {
	// Kind is "room" or "user".
	Kind      string
	Target    string
	CreatedTS int64
	CreatedBy id.UserID
}

// ComplianceStore keeps compliance holds and the original content of held
// events that were redacted. The event write keeps the original of an event
// under hold (its room or its sender is held) before a redaction replaces it.
type ComplianceStore interface {
	// PutHold places a hold (idempotent).
	PutHold(ctx context.Context, h Hold) error
	// DeleteHold lifts a hold; ErrNotFound if there is none.
	DeleteHold(ctx context.Context, kind, target string) error
	// ListHolds lists every hold.
	ListHolds(ctx context.Context) ([]Hold, error)
	// HeldOriginals returns the kept original PDUs among ids.
	HeldOriginals(ctx context.Context, ids []id.EventID) (map[id.EventID][]byte, error)
	// PurgedHeldEvents returns the kept originals of a room's events that
	// retention purged from the room (they are no longer among its events), by stream position.
	PurgedHeldEvents(ctx context.Context, roomID id.RoomID) ([]HeldEvent, error)
}

// RetentionStore purges expired room events.
type RetentionStore interface {
	// PurgeEvents deletes the room's accepted non-state events with
	// origin_server_ts < before, and, when selfDestructBefore is not zero, its
	// events whose content.m.self_destruct_after (ms) is below it. Forward
	// extremities and state events are never purged, so the DAG stays usable.
	// Events under a compliance hold are kept in held_events first. It returns
	// how many events it deleted.
	PurgeEvents(ctx context.Context, roomID id.RoomID, before int64, selfDestructBefore int64) (int, error)
	// PurgeRoom deletes everything stored about a room: its events, state,
	// state groups, memberships, aliases, directory entry, receipts,
	// notifications, relations, search index, per-room account data, key
	// backups and reports, in batched transactions (the room itself vanishes
	// in the first). A block on the room stays; events under a compliance
	// hold are kept in held_events. It returns how many events it deleted.
	PurgeRoom(ctx context.Context, roomID id.RoomID) (int, error)
}

// HeldEvent is the kept original of an event under hold.
type HeldEvent struct {
	EventID   id.EventID
	RoomID    id.RoomID
	Sender    id.UserID
	StreamPos int64
	PDU       []byte
}
